"""What one Kubeflow task does at run time: ``kedro run --nodes <its nodes>`` in the project.

Used by both task kinds: the cluster's container components call
``python -m yolo_mlops.kubeflow.task ...`` in the project image, and the local (lightweight)
components call :func:`run_stage` directly. One MLflow run spans the whole KFP execution: the
first task creates it (through the tracking layer) and returns its id as a task output; every
later task gets it as an input and sets ``MLFLOW_RUN_ID``, which the project's tracking hook
joins instead of starting a run of its own.

The run stays RUNNING while the execution runs: a task whose stage fails marks it FAILED, and
the sink tasks (those with no downstream task, ``finish_run``) mark it FINISHED after their stage
succeeds, unless a task already marked it FAILED.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_mlops.kubeflow.parameters import PIPELINE_PARAMETERS

TRAINJOB_ENV = "YOLO_MLOPS_TRAINJOB"  # read by yolo_mlops.pipelines.train.launch

if TYPE_CHECKING:
    from yolo_mlops.tracking.config import TrackingParams

logger = logging.getLogger(__name__)

# Kedro's data layers: a fresh PVC mounted at data/ is empty, and not every dataset creates its
# parent folder.
DATA_LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input",
               "06_models", "07_model_output", "08_reporting")  # fmt: skip


class StageFailedError(RuntimeError):
    """``kedro run`` of a stage exited with a non-zero status."""


@dataclass(frozen=True)
class Stage:
    """One stage's ``kedro run``.

    Attributes:
        name: stage name (for logs and the run's tags).
        nodes: Kedro node names to run.
        project_dir: the Kedro project root (``/app`` in the image).
        env: Kedro environment (``None``: Kedro's default).
        params: ``{dotted.key: value}`` overrides; empty-string values are dropped (they mean
            "keep the configured value").
        trainjob: ``TrainJobOptions`` JSON (``--train-nodes`` > 1): exported as
            ``$YOLO_MLOPS_TRAINJOB``, so the ``train_model`` node submits a Kubeflow TrainJob.
    """

    name: str
    nodes: Sequence[str]
    project_dir: str | Path = "."
    env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    trainjob: str = ""


@dataclass(frozen=True)
class SharedRun:
    """The task's part in the MLflow run shared by the whole KFP execution.

    Attributes:
        run_id: the run to join ("" for none).
        create: create the shared run when ``run_id`` is empty (the first task); see
            :func:`start_shared_run`. It stays RUNNING after this stage succeeds.
        finish: mark the run FINISHED after this stage succeeds (the sink tasks), unless a
            failed task marked it FAILED. A failed stage always marks it FAILED.
        name: name of the run when this task creates it (default ``kfp-<stage>``).
        tracking_uri: MLflow tracking URI; sets ``MLFLOW_TRACKING_URI`` when not empty.
    """

    run_id: str = ""
    create: bool = False
    finish: bool = False
    name: str = ""
    tracking_uri: str = ""


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


def nest_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": v}`` -> ``{"a": {"b": v}}``, as ``kedro run --params a.b=v`` does."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _project_parameters(
    project_dir: Path, env: str | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The resolved Kedro parameters of the project for ``env`` plus ``overrides``."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    runtime = nest_overrides(overrides)
    bootstrap_project(project_dir)
    with KedroSession.create(project_path=project_dir, env=env, runtime_params=runtime) as session:
        return dict(session.load_context().params)


def _tracking_settings(stage: Stage) -> TrackingParams:
    """The project's ``tracking`` block for the stage's environment and overrides."""
    from yolo_mlops.pipelines.params import parse_params
    from yolo_mlops.tracking.config import TrackingParams

    params = _project_parameters(Path(stage.project_dir), stage.env, stage.params)
    return parse_params(TrackingParams, params.get("tracking") or {}, "tracking")


def start_shared_run(stage: Stage, run_name: str) -> str:
    """Create the MLflow run shared by all tasks of this KFP execution; return its id.

    Goes through the tracking layer (this package never imports mlflow) with the project's
    ``tracking`` parameters, so the run lands in the same store and experiment as the tasks'
    hook would use. The run stays RUNNING after this process lets go of it (see
    :func:`end_shared_run`). Returns ``""`` when tracking is disabled or the store is
    unreachable (then the tasks run untracked, as ``tracking.on_unreachable: warn`` asks).
    """
    from yolo_mlops.tracking import run as tracking_run

    settings = _tracking_settings(stage)
    tags = {"orchestrator": "kubeflow", "kubeflow.run_name": run_name, "kedro.env": str(stage.env)}
    run = tracking_run.start_or_join(
        settings, Path(stage.project_dir), run_name or "kubeflow", tags
    )
    if run is None:
        return ""
    logger.info("Created MLflow run %s for this Kubeflow execution", run.run_id)
    return run.run_id


def release_shared_run() -> None:
    """Let go of the run :func:`start_shared_run` created in this process, leaving it RUNNING
    (later tasks join it; a failing task or the sinks end it with :func:`end_shared_run`)."""
    from yolo_mlops.tracking import run as tracking_run

    tracking_run.end(None)


def end_shared_run(run_id: str, succeeded: bool, stage: Stage) -> None:
    """Mark the shared run FAILED, or FINISHED unless it is already FAILED. Never raises: a
    failure here (store down, broken configuration) is logged, so it cannot hide the stage's
    own result."""
    from yolo_mlops.tracking import run as tracking_run

    status = "FINISHED" if succeeded else "FAILED"
    try:
        settings = _tracking_settings(stage)
        tracking_run.terminate(run_id, status, settings, Path(stage.project_dir))
    except Exception as error:
        logger.warning(
            "Could not mark MLflow run %s %s (%s: %s)", run_id, status, type(error).__name__, error
        )


def run_stage(stage: Stage, run: SharedRun = SharedRun()) -> str:
    """Run one stage's nodes with ``kedro run`` and return the MLflow run id it logged into.

    Raises:
        StageFailedError: ``kedro run`` failed.
    """
    stage = _prepared(stage)
    if run.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = run.tracking_uri
    owns_run = run.create and not run.run_id
    run_id = start_shared_run(stage, run.name or f"kfp-{stage.name}") if owns_run else run.run_id
    command = kedro_run_command(stage.nodes, stage.env, stage.params)
    logger.info("Stage %r: %s (cwd %s)", stage.name, " ".join(command), stage.project_dir)
    completed = subprocess.run(
        command, cwd=stage.project_dir, env=_environment(stage, run_id), check=False
    )
    if owns_run:
        release_shared_run()  # later tasks join it: it stays RUNNING
    succeeded = completed.returncode == 0
    if run_id and (run.finish or not succeeded):
        end_shared_run(run_id, succeeded, stage)
    if not succeeded:
        raise StageFailedError(
            f"stage {stage.name!r}: `{' '.join(command)}` exited with status {completed.returncode}"
        )
    return run_id


def _prepared(stage: Stage) -> Stage:
    """``stage`` with an absolute project folder holding the data layers, and the overrides
    it passes on (empty values dropped, integers typed)."""
    project_dir = Path(stage.project_dir).resolve()
    for layer in DATA_LAYERS:
        (project_dir / "data" / layer).mkdir(parents=True, exist_ok=True)
    overrides = {k: v for k, v in stage.params.items() if v is not None and str(v) != ""}
    return replace(stage, project_dir=project_dir, params=_typed(overrides))


def _environment(stage: Stage, run_id: str) -> dict[str, str]:
    """The ``kedro run`` process's environment: this one, plus the run to join and the job."""
    environment = dict(os.environ)
    environment.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    if run_id:
        environment["MLFLOW_RUN_ID"] = run_id
    if stage.trainjob:
        environment[TRAINJOB_ENV] = stage.trainjob
    return environment


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
    parser.add_argument(
        "--finish-run", action="store_true", help="mark the run FINISHED after success (sinks)"
    )
    parser.add_argument("--tracking-uri", default="")
    parser.add_argument("--run-name", default="")
    parser.add_argument("--run-id-output", default="", help="file that receives the run id")
    parser.add_argument("--trainjob", default="", help="TrainJobOptions JSON (multi-node train)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the container tasks: ``python -m yolo_mlops.kubeflow.task ...``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = _parse_args(argv)
    stage = Stage(
        name=args.stage,
        nodes=args.nodes.split(","),
        project_dir=args.project_dir,
        env=args.env or None,
        params=dict(item.split("=", 1) for item in args.param),
        trainjob=args.trainjob,
    )
    run = SharedRun(
        run_id=args.run_id,
        create=args.create_run,
        finish=args.finish_run,
        name=args.run_name,
        tracking_uri=args.tracking_uri,
    )
    run_id = run_stage(stage, run)
    if args.run_id_output:
        output = Path(args.run_id_output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(run_id)


if __name__ == "__main__":
    main()
