"""What one Kubeflow task does at run time: ``kedro run --nodes <its nodes>`` in the project.

Used by both task kinds: the cluster's container components call
``python -m yolo_mlops.kubeflow.task ...`` in the project image, and the local (lightweight)
components call :func:`run_stage` directly. One MLflow run spans the whole KFP execution: the
first task creates it (through the tracking layer) and returns its id as a task output; every
later task gets it as an input and sets ``MLFLOW_RUN_ID``, which the project's tracking hook
joins instead of starting a run of its own.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from yolo_mlops.kubeflow.parameters import PIPELINE_PARAMETERS

logger = logging.getLogger(__name__)


class StageFailedError(RuntimeError):
    """``kedro run`` of a stage exited with a non-zero status."""


def kedro_run_command(
    nodes: Sequence[str], env: str | None = None, params: Mapping[str, Any] | None = None
) -> list[str]:
    """The ``kedro run`` command line (as argv) for one stage.

    Args:
        nodes: Kedro node names of the stage.
        env: Kedro configuration environment; ``None``/empty keeps Kedro's default.
        params: ``{dotted.key: value}`` runtime overrides; values must not contain commas.

    Raises:
        ValueError: a value contains a comma (Kedro's ``--params`` separator).
    """
    command = [sys.executable, "-m", "kedro", "run", "--nodes", ",".join(nodes)]
    if env:
        command += ["--env", env]
    if params:
        for key, value in params.items():
            if "," in str(value):
                raise ValueError(f"parameter {key}={value!r}: kedro --params cannot carry commas")
        command += ["--params", ",".join(f"{key}={value}" for key, value in params.items())]
    return command


def create_tracking_run(tracking_uri: str, run_name: str, tags: Mapping[str, str]) -> str:
    """Create the MLflow run shared by all tasks and return its id ("" without tracking).

    The kubeflow package does not import mlflow (only the tracking layer does): it asks
    ``yolo_mlops.tracking.create_run``. When the tracking layer does not provide it, every task
    falls back to a run of its own and this logs a warning.
    """
    try:
        tracking = importlib.import_module("yolo_mlops.tracking")
    except ImportError:
        tracking = None
    create_run = getattr(tracking, "create_run", None)
    if create_run is None:
        logger.warning(
            "yolo_mlops.tracking.create_run is not available: each KFP task will track its own "
            "MLflow run instead of one shared run"
        )
        return ""
    run_id = str(create_run(tracking_uri=tracking_uri or None, run_name=run_name, tags=dict(tags)))
    logger.info("Created MLflow run %s for this Kubeflow execution", run_id)
    return run_id


def run_stage(
    *,
    stage: str,
    nodes: Sequence[str],
    project_dir: str | Path = ".",
    env: str | None = None,
    params: Mapping[str, Any] | None = None,
    run_id: str = "",
    create_run: bool = False,
    tracking_uri: str = "",
    run_name: str = "",
) -> str:
    """Run one stage's nodes with ``kedro run`` and return the MLflow run id it logged into.

    Args:
        stage: stage name (for logs and the run's tags).
        nodes: Kedro node names to run.
        project_dir: the Kedro project root (``/app`` in the image).
        env: Kedro environment.
        params: ``{dotted.key: value}`` overrides; empty-string values are dropped (they mean
            "keep the configured value").
        run_id: MLflow run id to join ("" for none).
        create_run: create the shared MLflow run when ``run_id`` is empty (the first task).
        tracking_uri: MLflow tracking URI; sets ``MLFLOW_TRACKING_URI`` when not empty.
        run_name: name of the MLflow run when this task creates it.

    Raises:
        StageFailedError: ``kedro run`` failed.
    """
    overrides = _typed({k: v for k, v in (params or {}).items() if v is not None and str(v) != ""})
    environment = dict(os.environ)
    environment.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    if tracking_uri:
        environment["MLFLOW_TRACKING_URI"] = tracking_uri
    if not run_id and create_run:
        run_id = create_tracking_run(
            tracking_uri, run_name or f"kfp-{stage}", {"orchestrator": "kubeflow"}
        )
    if run_id:
        environment["MLFLOW_RUN_ID"] = run_id
    command = kedro_run_command(nodes, env, overrides)
    logger.info("Stage %r: %s (cwd %s)", stage, " ".join(command), project_dir)
    completed = subprocess.run(command, cwd=project_dir, env=environment, check=False)
    if completed.returncode != 0:
        raise StageFailedError(
            f"stage {stage!r}: `{' '.join(command)}` exited with status {completed.returncode}"
        )
    return run_id


def _typed(params: Mapping[str, Any]) -> dict[str, Any]:
    """Cast integer pipeline parameters back to ``int``: KFP may hand an integer over as
    ``64.0`` (JSON number or rendered placeholder), which the typed parameter blocks reject."""
    int_keys = {p.kedro_key for p in PIPELINE_PARAMETERS if p.type is int}
    return {
        key: int(float(value)) if key in int_keys and value != "" else value
        for key, value in params.items()
    }


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one Kubeflow stage of the Kedro project.")
    parser.add_argument("--stage", required=True)
    parser.add_argument("--nodes", required=True, help="comma-separated Kedro node names")
    parser.add_argument("--project-dir", default=".")
    parser.add_argument("--env", default="")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run-id", default="")
    parser.add_argument("--create-run", action="store_true")
    parser.add_argument("--tracking-uri", default="")
    parser.add_argument("--run-name", default="")
    parser.add_argument("--run-id-output", default="", help="file that receives the run id")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the container tasks: ``python -m yolo_mlops.kubeflow.task ...``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = _parse_args(argv)
    params = dict(item.split("=", 1) for item in args.param)
    run_id = run_stage(
        stage=args.stage,
        nodes=args.nodes.split(","),
        project_dir=args.project_dir,
        env=args.env or None,
        params=params,
        run_id=args.run_id,
        create_run=args.create_run,
        tracking_uri=args.tracking_uri,
        run_name=args.run_name,
    )
    if args.run_id_output:
        output = Path(args.run_id_output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(run_id)


if __name__ == "__main__":
    main()
