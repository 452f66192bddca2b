"""``kedro kubeflow compile``: the Kedro project command (entry point in pyproject.toml)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger(__name__)


@click.group(name="yolo-mlops")
def commands() -> None:
    """Project commands of yolo-mlops."""


@commands.group()
def kubeflow() -> None:
    """Kubeflow Pipelines (KFP v2) deployment of the Kedro pipelines."""


@kubeflow.command()
@click.option("--pipeline", "-p", "pipeline_name", default="training", show_default=True)
@click.option(
    "--image",
    "-i",
    default="yolo-mlops:latest",
    show_default=True,
    help="Project image the tasks run in (build it from the Dockerfile).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("pipeline.yaml"),
    show_default=True,
)
@click.option("--env", "-e", default=None, help="Kedro environment of the tasks (default: local).")
@click.option(
    "--pvc",
    default="yolo-mlops-data",
    show_default=True,
    help="Existing PVC mounted at /app/data in every task; '' for none.",
)
@click.option(
    "--gpu",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="GPUs for the train task.",
)
@click.option("--gpu-type", default="nvidia.com/gpu", show_default=True)
@click.option(
    "--train-nodes",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="> 1: the train task submits a Kubeflow Trainer TrainJob of this many nodes "
    "(--gpu processes each; needs a ReadWriteMany --pvc).",
)
@click.option("--trainjob-runtime", default="torch-distributed", show_default=True)
@click.option("--keep-trainjob", is_flag=True, help="Keep the TrainJob after it ends.")
@click.option("--cpu", default=None, help="CPU request/limit of the train task, e.g. 4.")
@click.option("--memory", default=None, help="Memory request/limit of the train task, e.g. 16Gi.")
@click.option(
    "--shm-size",
    default="2Gi",
    show_default=True,
    help="Size of the memory-backed /dev/shm of the train/evaluate tasks.",
)
@click.option(
    "--mlflow-tracking-uri",
    default="",
    help="Default of the mlflow_tracking_uri run parameter (a server reachable from "
    "the pods, e.g. http://mlflow.mlflow.svc:5000).",
)
@click.option(
    "--group-by", type=click.Choice(["tag", "namespace"]), default="tag", show_default=True
)
@click.option(
    "--local",
    is_flag=True,
    help="Lightweight Python tasks for kfp.local.SubprocessRunner (runs here).",
)
@click.option("--caching/--no-caching", default=False, show_default=True)
@click.option(
    "--tracking-secret",
    default="",
    help="Kubernetes Secret (keys username, password) every task reads as "
    "MLFLOW_TRACKING_USERNAME/PASSWORD: the team tracking server's pipeline account.",
)
@click.pass_obj
def compile(
    metadata,
    *,
    pipeline_name: str,
    image: str,
    output: Path,
    env: str | None,
    pvc: str,
    gpu: int,
    gpu_type: str,
    train_nodes: int,
    trainjob_runtime: str,
    keep_trainjob: bool,
    cpu: str | None,
    memory: str | None,
    shm_size: str,
    mlflow_tracking_uri: str,
    group_by: str,
    local: bool,
    caching: bool,
    tracking_secret: str,
) -> None:
    """Compile a Kedro pipeline into a KFP v2 pipeline YAML (one task per stage)."""
    # Imported here: every `kedro` command loads this module, and kfp is slow to import.
    from yolo_mlops.kubeflow.compiler import CompileOptions, compile_project
    from yolo_mlops.kubeflow.grouping import GroupingError, PreflightError
    from yolo_mlops.kubeflow.secrets import TRACKING_SECRET, SecretEnv

    secrets = (SecretEnv(tracking_secret, TRACKING_SECRET.keys),) if tracking_secret else ()
    options = CompileOptions(
        image=image,
        env=env,
        pvc=pvc,
        gpu=gpu,
        gpu_type=gpu_type,
        train_nodes=train_nodes,
        trainjob_runtime=trainjob_runtime,
        keep_trainjob=keep_trainjob,
        cpu=cpu,
        memory=memory,
        shm_size=shm_size,
        mlflow_tracking_uri=mlflow_tracking_uri,
        local=local,
        group_by=group_by,
        caching=caching,
        secrets=secrets,
    )
    try:
        path = compile_project(metadata.project_path, pipeline_name, options, output)
    except (GroupingError, PreflightError, KeyError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Wrote {path}")


@kubeflow.command(name="compile-tune")
@click.option("--image", "-i", default="yolo-mlops:latest", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("tune_pipeline.yaml"),
    show_default=True,
)
@click.option("--env", "-e", default=None, help="Kedro environment of the tasks (default: local).")
@click.option("--pvc", default="yolo-mlops-data", show_default=True, help="PVC at /app/data.")
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(min=1),
    help="Parallel trial tasks, all against one study.",
)  # fmt: skip
@click.option(
    "--tune-storage", default=None,
    help="Default study storage (SQLAlchemy URL); default: an SQLite file on the PVC.",
)  # fmt: skip
@click.option("--gpu", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--gpu-type", default="nvidia.com/gpu", show_default=True)
@click.option("--cpu", default=None, help="CPU request/limit of each trial task.")
@click.option("--memory", default=None, help="Memory request/limit of each trial task.")
@click.option("--mlflow-tracking-uri", default="", help="Default tracking URI of the tasks.")
@click.pass_obj
def compile_tune(metadata, *, output: Path, tune_storage: str | None, **options) -> None:
    """Compile the `tune` pipeline: a study task, --workers parallel trial tasks, a report."""
    from yolo_mlops.kubeflow.compiler import load_project
    from yolo_mlops.kubeflow.tune import PVC_STORAGE, TuneCompileOptions
    from yolo_mlops.kubeflow.tune import compile_tune as compile_tune_pipeline

    _, _, parameters = load_project(metadata.project_path, "tune", options["env"])
    settings = TuneCompileOptions(storage=tune_storage or PVC_STORAGE, **options)
    path = compile_tune_pipeline(settings, dict(parameters.get("tune") or {}), output)
    click.echo(f"Wrote {path}")
