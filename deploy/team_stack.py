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
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import psycopg
from psycopg import sql

from yolo_mlops.tracking import team_access

logger = logging.getLogger("team_stack")

PG_BIN = Path(os.environ.get("TEAM_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
ARTIFACT_BUCKET = "mlflow"  # the tracking server's artifact store (s3://mlflow/artifacts)
DVC_BUCKET = "dvc"  # the DVC remote (s3://dvc/store)
EXPERIMENT = "yolo-mlops"
MODEL = "yolo11n-coco128"
WEED_PORTS = 8  # master, volume, filer, s3: an http and a grpc port each


# ----------------------------------------------------------------------------- state
def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state"
    return Path(base) / "yolo-mlops" / "team"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the first byte)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def load_secrets(state: Path) -> dict[str, str]:
    """The stack's passwords and keys, generated once and kept in ``secrets.json`` (0600)."""
    path = state / "secrets.json"
    values = _read_json(path)
    names = ("postgres", "mlflow_db", "s3_server_secret", "s3_dvc_secret", "s3_admin_secret",
             "pipeline", "reader", "flask_secret")  # fmt: skip
    for name in names:
        values.setdefault(name, secrets.token_urlsafe(24))
    values["admin"] = (
        os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD")
        or values.get("admin")
        or (secrets.token_urlsafe(24))
    )
    _write_private(path, json.dumps(values, indent=2))
    return values


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count < 65535 and all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _same_or_free_port(previous: dict[str, Any] | None, wait_s: float = 15) -> int:
    """The port a restarted service had (clients keep their URI), else a free one. Waits up to
    ``wait_s`` for the old port: the killed service's workers may still hold it a moment."""
    port = (previous or {}).get("port")
    deadline = time.monotonic() + wait_s
    while port:
        if _port_free(port):
            return port
        if time.monotonic() > deadline:
            logger.warning("port %s is still taken; using another one", port)
            break
        time.sleep(0.2)
    return _free_ports(1)


def _alive(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` runs and its command line contains ``marker`` (not a reused pid)."""
    if not pid:
        return False
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False


def _wait(check, what: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} was not ready within {timeout_s:.0f} s")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except OSError as error:
        return getattr(error, "code", 500) < 500


# ----------------------------------------------------------------------------- PostgreSQL
def _as_postgres(command: list[str]) -> list[str]:
    """Run ``command`` as the ``postgres`` user when we are root (PostgreSQL refuses root)."""
    return ["runuser", "-u", PG_USER, "--", *command] if os.geteuid() == 0 else command


def _check_reachable(folder: Path) -> None:
    """The ``postgres`` user must be able to enter ``folder`` (every parent needs ``x``)."""
    if os.geteuid() != 0:
        return
    done = subprocess.run(_as_postgres(["test", "-x", str(folder)]), check=False)
    if done.returncode != 0:
        raise PermissionError(
            f"the {PG_USER} user cannot enter {folder}: give its parent folders search "
            f"permission (chmod o+x) or choose a --state-dir it can reach"
        )


def _postgres_owned(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(PG_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


def _initdb(state: Path, data: Path, password: str) -> None:
    data.mkdir(mode=0o700)
    _postgres_owned(data)
    _check_reachable(data)
    pwfile = state / ".pg-initdb-password"
    _write_private(pwfile, password + "\n")
    _postgres_owned(pwfile)
    try:
        auth = ["--auth-host=scram-sha-256", "--auth-local=reject"]
        command = [str(PG_BIN / "initdb"), "-D", str(data), "-U", PG_USER, "-E", "UTF8",
                   "--pwfile", str(pwfile), *auth]  # fmt: skip
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=300)
    finally:
        pwfile.unlink(missing_ok=True)


def start_postgres(state: Path, values: dict[str, str], previous: dict | None) -> dict[str, Any]:
    """A throwaway cluster in ``state/postgres`` on a free port (its previous one on a restart);
    databases ``mlflow`` and ``mlflow_auth`` owned by the role ``mlflow``."""
    data, logs = state / "postgres", state / "logs"
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        _initdb(state, data, values["postgres"])
    port = _same_or_free_port(previous)
    log = logs / "postgres.log"
    log.touch()
    _postgres_owned(log)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
    command = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120",
               "-o", options, "start"]  # fmt: skip
    subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=180)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    if fresh:
        _create_databases(port, values)
    return {"pid": pid, "port": port, "data": str(data)}


def _create_databases(port: int, values: dict[str, str]) -> None:
    dsn = f"host=127.0.0.1 port={port} user={PG_USER} dbname=postgres"
    with psycopg.connect(dsn, password=values["postgres"], autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE mlflow LOGIN PASSWORD {}").format(sql.Literal(values["mlflow_db"]))
        )
        for database in ("mlflow", "mlflow_auth"):
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER mlflow").format(sql.Identifier(database))
            )


def stop_postgres(entry: dict[str, Any], timeout_s: float = 60) -> None:
    """Fast shutdown (SIGINT to the postmaster: roll back sessions, checkpoint, exit)."""
    pid = entry.get("pid")
    if not _alive(pid, "postgres"):
        return
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid, "postgres"):
        time.sleep(0.2)
    if _alive(pid, "postgres"):
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown; recovery runs at the next start


def database_uri(stack: dict[str, Any], values: dict[str, str], database: str) -> str:
    port = stack["postgres"]["port"]
    return f"postgresql+psycopg://mlflow:{values['mlflow_db']}@127.0.0.1:{port}/{database}"


# ----------------------------------------------------------------------------- SeaweedFS (S3)
def _identities(values: dict[str, str]) -> dict[str, Any]:
    """S3 identities: the tracking server (its bucket), DVC (its bucket), admin (buckets)."""

    def identity(name: str, secret: str, actions: list[str]) -> dict[str, Any]:
        credentials = [{"accessKey": f"team-{name}", "secretKey": values[secret]}]
        return {"name": name, "credentials": credentials, "actions": actions}

    def scoped(bucket: str) -> list[str]:
        return [f"{action}:{bucket}" for action in ("Read", "Write", "List", "Tagging")]

    return {
        "identities": [
            identity("mlflow-server", "s3_server_secret", scoped(ARTIFACT_BUCKET)),
            identity("dvc", "s3_dvc_secret", scoped(DVC_BUCKET)),
            identity("admin", "s3_admin_secret", ["Admin", "Read", "Write", "List", "Tagging"]),
        ]
    }  # fmt: skip


def _weed_binary() -> str:
    candidate = Path(sys.executable).with_name("weed")
    return str(candidate) if candidate.is_file() else "weed"


def start_seaweedfs(state: Path, values: dict[str, str], previous: dict | None) -> dict[str, Any]:
    """``weed server -s3`` with every port on 127.0.0.1 (its previous ones on a restart) and its
    volumes in ``state/seaweedfs``."""
    data, logs = state / "seaweedfs", state / "logs"
    data.mkdir(exist_ok=True)
    config = state / "s3-identities.json"
    _write_private(config, json.dumps(_identities(values), indent=2))
    ports = (previous or {}).get("ports") or {}
    if not ports or not all(_port_free(p) and _port_free(p + 1) for p in ports.values()):
        base = _free_ports(WEED_PORTS)
        ports = {name: base + 2 * i for i, name in enumerate(("master", "volume", "filer", "s3"))}
    command = [_weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
               "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-master.volumeSizeLimitMB=256", "-volume.max=0"]  # fmt: skip
    for name, port in ports.items():
        command += [f"-{name}.port={port}", f"-{name}.port.grpc={port + 1}"]
    sockets = state / "sockets"  # weed's local sockets default to /tmp: keep them in the state
    sockets.mkdir(exist_ok=True)
    command += [f"-filer.localSocket={sockets / 'filer.sock'}",
                f"-s3.localSocket={sockets / 's3.sock'}"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(sockets)}
    process = _spawn(command, logs / "seaweedfs.log", env)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    _wait(lambda: _http_ok(endpoint), "SeaweedFS S3 gateway", 120, process)
    _create_buckets(endpoint, values)
    return {"pid": process.pid, "port": ports["s3"], "ports": ports, "endpoint": endpoint}


def _create_buckets(endpoint: str, values: dict[str, str]) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="team-admin", aws_secret_access_key=values["s3_admin_secret"],
    )  # fmt: skip
    deadline = time.monotonic() + 60
    for bucket in (ARTIFACT_BUCKET, DVC_BUCKET):
        while True:
            try:
                s3.head_bucket(Bucket=bucket)
                break
            except Exception:
                try:
                    s3.create_bucket(Bucket=bucket)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)  # the filer may still be joining the master


# ----------------------------------------------------------------------------- MLflow
def _spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``command`` in its own session (so stop can end its workers), output to ``log``."""
    with log.open("a") as handle:
        return subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


def _auth_config(state: Path, stack: dict[str, Any], values: dict[str, str]) -> Path:
    path = state / "basic_auth.ini"
    text = f"""[mlflow]
default_permission = NO_PERMISSIONS
database_uri = {database_uri(stack, values, "mlflow_auth")}
admin_username = admin
admin_password = {values["admin"]}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
# Cache a verified password for 30 s: PBKDF2 on every request costs more than the request.
auth_cache_ttl_seconds = 30
"""
    _write_private(path, text)
    return path


def start_mlflow(state: Path, stack: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """``mlflow server`` on PostgreSQL, artifacts proxied to ``s3://mlflow/artifacts``, basic
    auth on. Secrets reach it through its environment, never its command line. A restart keeps
    the port."""
    port = _same_or_free_port(stack.get("mlflow"))
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": database_uri(stack, values, "mlflow"),
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{ARTIFACT_BUCKET}/artifacts",
        "MLFLOW_S3_ENDPOINT_URL": stack["seaweedfs"]["endpoint"],
        "AWS_ACCESS_KEY_ID": "team-mlflow-server",
        "AWS_SECRET_ACCESS_KEY": values["s3_server_secret"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(state, stack, values)),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": values["flask_secret"],
    }
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_RUN_ID", "MLFLOW_AUTH_ADMIN_PASSWORD"):  # fmt: skip
        env.pop(name, None)
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]  # fmt: skip
    process = _spawn(command, state / "logs" / "mlflow.log", env)
    uri = f"http://127.0.0.1:{port}"
    _wait(lambda: _http_ok(f"{uri}/health"), "mlflow server", 180, process)
    return {"pid": process.pid, "port": port, "uri": uri}


def _provision(stack: dict[str, Any], values: dict[str, str], models: tuple[str, ...]) -> None:
    accounts = {role: team_access.Account(role, values[role]) for role in ("pipeline", "reader")}
    team_access.provision(
        stack["mlflow"]["uri"], team_access.Account("admin", values["admin"]), accounts,
        experiment=EXPERIMENT, models=models,
    )  # fmt: skip


# ----------------------------------------------------------------------------- commands
def role_env(state: Path, role: str) -> dict[str, str]:
    """The variables a ``role`` (pipeline, reader, admin) exports to use the stack."""
    stack, values = _read_json(state / "stack.json"), load_secrets(state)
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
        _write_private(state / f"{role}.env", "\n".join(lines) + "\n")


def start(state: Path, models: tuple[str, ...] = (MODEL,)) -> dict[str, Any]:
    """Start every service that is not running yet; the stack record (``stack.json``)."""
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o711)  # postgres (another user) enters its own folder inside; nothing more
    (state / "logs").mkdir(exist_ok=True)
    values = load_secrets(state)
    stack = _read_json(state / "stack.json")
    starters = {
        "postgres": lambda: start_postgres(state, values, stack.get("postgres")),
        "seaweedfs": lambda: start_seaweedfs(state, values, stack.get("seaweedfs")),
        "mlflow": lambda: start_mlflow(state, stack, values),
    }
    markers = {"postgres": "postgres", "seaweedfs": "weed", "mlflow": "mlflow"}
    for name, starter in starters.items():
        if _alive(stack.get(name, {}).get("pid"), markers[name]):
            logger.info("%s already running (pid %s)", name, stack[name]["pid"])
            continue
        stack[name] = starter()
        logger.info("%s started: pid %s, port %s", name, stack[name]["pid"], stack[name]["port"])
        _write_private(state / "stack.json", json.dumps(stack, indent=2))
    _provision(stack, values, models)
    _write_env_files(state)
    return stack


def _end_group(pid: int | None, marker: str, timeout_s: float = 15) -> None:
    """SIGTERM the process group ``start`` created, SIGKILL what is left after ``timeout_s``."""
    if not _alive(pid, marker):
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _alive(pid, marker):
            time.sleep(0.2)
        if not _alive(pid, marker):
            return


def stop(state: Path) -> None:
    """Stop what ``start`` recorded in ``stack.json`` (MLflow, then S3, then PostgreSQL)."""
    stack = _read_json(state / "stack.json")
    _end_group(stack.get("mlflow", {}).get("pid"), "mlflow")
    weed = stack.get("seaweedfs", {})
    _end_group(weed.get("pid"), "weed", timeout_s=12)  # its graceful stop takes ~10 s
    for port in weed.get("ports", {}).values():  # gRPC sockets weed always puts in /tmp
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port + 1}.sock"):
            sock.unlink(missing_ok=True)
    if "postgres" in stack:
        stop_postgres(stack["postgres"])
    logger.info("stopped the stack of %s (data kept; delete the folder to discard it)", state)


def dvc_remote(state: Path, repo: Path, name: str) -> None:
    """Add the S3 remote ``name`` to ``repo``'s ``.dvc/config.local`` (git-ignored), with keys."""
    env = role_env(state, "pipeline")
    settings = [
        ["remote", "add", "--local", "--force", name, f"s3://{DVC_BUCKET}/store"],
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
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
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
        print(json.dumps(_read_json(state / "stack.json"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
