"""Start, inspect and stop the team stack on one machine: PostgreSQL, SeaweedFS (S3), MLflow.

    python deploy/team_stack.py start  [--state-dir DIR]   # start what is not running
    python deploy/team_stack.py env    [--state-dir DIR] [--role pipeline|reader|admin]
    python deploy/team_stack.py dvc-remote --repo PATH [--state-dir DIR] [--name team]
    python deploy/team_stack.py status [--state-dir DIR]
    python deploy/team_stack.py stop   [--state-dir DIR]   # stop exactly what start started

Everything lives in the state folder (default ``$XDG_STATE_HOME/yolo-mlops/team``, never in the
repository): the PostgreSQL cluster, the object store's volumes, the logs, ``stack.json`` (the
processes and ports), ``secrets.json`` and the ``<role>.env`` files (mode 0600). Passwords are
generated at the first start; the MLflow admin's comes from ``$MLFLOW_AUTH_ADMIN_PASSWORD``
when set. Every service listens on 127.0.0.1 only. See docs/team.md.

Each service is a module of ``deploy/team_services/`` (``postgres``, ``seaweedfs``,
``mlflow_server``, with ``files`` and ``processes`` shared); this script starts and stops them in
order, provisions the MLflow accounts and writes the role files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from team_services import files, mlflow_server, postgres, processes, seaweedfs

from yolo_mlops.tracking import team_access

logger = logging.getLogger("team_stack")

EXPERIMENT = "yolo-mlops"
MODEL = "yolo11n-coco128"
#: The process of each service, by the word its command line contains (a pid is not reused).
MARKERS = {
    "postgres": postgres.MARKER,
    "seaweedfs": seaweedfs.MARKER,
    "mlflow": mlflow_server.MARKER,
}


def _provision(stack: dict[str, Any], values: dict[str, str], models: tuple[str, ...]) -> None:
    accounts = {role: team_access.Account(role, values[role]) for role in ("pipeline", "reader")}
    team_access.provision(
        stack["mlflow"]["uri"], team_access.Account("admin", values["admin"]), accounts,
        experiment=EXPERIMENT, models=models,
    )  # fmt: skip


def role_env(state: Path, role: str) -> dict[str, str]:
    """The variables a ``role`` (pipeline, reader, admin) exports to use the stack."""
    stack, values = files.read_json(state / "stack.json"), files.load_secrets(state)
    env = {
        "MLFLOW_TRACKING_URI": stack["mlflow"]["uri"],
        "MLFLOW_TRACKING_USERNAME": role,
        "MLFLOW_TRACKING_PASSWORD": values[role],
    }
    if role == "pipeline":  # DVC's remote credentials (also settable with `dvc remote --local`)
        env.update({
            # A call in flight when the server restarts retries for ~1 min (2+4+...+32 s)
            # instead of failing: the run resumes logging.
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
            "TEAM_S3_ENDPOINT_URL": stack["seaweedfs"]["endpoint"],
            "AWS_ACCESS_KEY_ID": "team-dvc",
            "AWS_SECRET_ACCESS_KEY": values["s3_dvc_secret"],
        })  # fmt: skip
    return env


def _write_env_files(state: Path) -> None:
    for role in ("pipeline", "reader", "admin"):
        lines = [f"export {k}={shlex.quote(v)}" for k, v in role_env(state, role).items()]
        files.write_private(state / f"{role}.env", "\n".join(lines) + "\n")


def start(state: Path, models: tuple[str, ...] = (MODEL,)) -> dict[str, Any]:
    """Start every service that is not running yet; the stack record (``stack.json``)."""
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o711)  # postgres (another user) enters its own folder inside; nothing more
    (state / "logs").mkdir(exist_ok=True)
    values = files.load_secrets(state)
    stack = files.read_json(state / "stack.json")
    starters = {
        "postgres": lambda: postgres.start(state, values, stack.get("postgres")),
        "seaweedfs": lambda: seaweedfs.start(state, values, stack.get("seaweedfs")),
        "mlflow": lambda: mlflow_server.start(state, stack, values),
    }
    for name, starter in starters.items():
        if processes.alive(stack.get(name, {}).get("pid"), MARKERS[name]):
            logger.info("%s already running (pid %s)", name, stack[name]["pid"])
            continue
        stack[name] = starter()
        logger.info("%s started: pid %s, port %s", name, stack[name]["pid"], stack[name]["port"])
        files.write_private(state / "stack.json", json.dumps(stack, indent=2))
    _provision(stack, values, models)
    _write_env_files(state)
    return stack


def stop(state: Path) -> None:
    """Stop what ``start`` recorded in ``stack.json`` (MLflow, then S3, then PostgreSQL)."""
    stack = files.read_json(state / "stack.json")
    processes.end_group(stack.get("mlflow", {}).get("pid"), MARKERS["mlflow"])
    weed = stack.get("seaweedfs", {})
    # weed's graceful stop takes about 10 s
    processes.end_group(weed.get("pid"), MARKERS["seaweedfs"], timeout_s=12)
    for port in weed.get("ports", {}).values():  # gRPC sockets weed always puts in /tmp
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port + 1}.sock"):
            sock.unlink(missing_ok=True)
    if "postgres" in stack:
        postgres.stop(stack["postgres"])
    logger.info("stopped the stack of %s (data kept; delete the folder to discard it)", state)


def dvc_remote(state: Path, repo: Path, name: str) -> None:
    """Add the S3 remote ``name`` to ``repo``'s ``.dvc/config.local`` (git-ignored), with keys."""
    env = role_env(state, "pipeline")
    settings = [
        ["remote", "add", "--local", "--force", name, f"s3://{seaweedfs.DVC_BUCKET}/store"],
        ["remote", "modify", "--local", name, "endpointurl", env["TEAM_S3_ENDPOINT_URL"]],
        ["remote", "modify", "--local", name, "access_key_id", env["AWS_ACCESS_KEY_ID"]],
        ["remote", "modify", "--local", name, "secret_access_key", env["AWS_SECRET_ACCESS_KEY"]],
        ["remote", "modify", "--local", name, "region", "us-east-1"],
    ]
    for args in settings:
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, check=True,
                       capture_output=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "stop", "env", "status", "dvc-remote"))
    parser.add_argument("--state-dir", type=Path, default=files.default_state_dir())
    parser.add_argument("--role", default="pipeline", choices=("pipeline", "reader", "admin"))
    parser.add_argument("--model", action="append", help=f"registered model (default {MODEL})")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="dvc-remote: the clone")
    parser.add_argument("--name", default="team", help="dvc-remote: the remote's name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    state = args.state_dir.resolve()
    if args.command == "start":
        start(state, tuple(args.model or [MODEL]))
        print(f"source {state / 'pipeline.env'}")
    elif args.command == "stop":
        stop(state)
    elif args.command == "env":
        for key, value in role_env(state, args.role).items():
            print(f"export {key}={shlex.quote(value)}")
    elif args.command == "dvc-remote":
        dvc_remote(state, args.repo.resolve(), args.name)
    else:
        print(json.dumps(files.read_json(state / "stack.json"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
