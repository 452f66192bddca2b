"""The ``tune`` pipeline on Kubeflow: one study task, N parallel trial tasks, one report task.

    study (create_study) ──> ParallelFor N: trials (run_trials) ──> report (summarize_study,
                                                                        register_best_trial)

Every task runs ``kedro run --pipeline tune --nodes <its nodes>`` in the project image
(``python -m yolo_mlops.kubeflow.tune ...``, :func:`run_step`), like the stage tasks of
:mod:`yolo_mlops.kubeflow.task`: the study task creates the execution's MLflow run (the study's
parent run), the trial tasks and the report task join it, the report task ends it FINISHED.
The trial tasks each run ``tune.workers=1`` trial loop against the same study storage, so the
study ends with exactly ``tune.n_trials`` finished trials however many tasks there are (up to
one extra trial per task when tasks on different machines race for the last slot: the claim
lock is per machine). The storage must be one every pod reaches: by default an SQLite file on
the data PVC (pods on one node), or a PostgreSQL URL (``--tune-storage``).
"""

# No `from __future__ import annotations`: kfp reads the components' annotations at definition.
import argparse
import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kfp import compiler, dsl

from yolo_mlops.kubeflow import task
from yolo_mlops.kubeflow.compiler import set_resources

logger = logging.getLogger(__name__)

PIPELINE = "tune"
MODULE = "yolo_mlops.kubeflow.tune"
RUN_ID_OUTPUT = "run_id_out"
#: The study on the data PVC: shared by the pods of one node (SQLite needs a local filesystem).
PVC_STORAGE = "sqlite:////app/data/07_model_output/tune/optuna.db"
#: Integer overrides: KFP may render an integer run parameter as ``16.0``.
INT_KEYS = ("tune.n_trials", "tune.epochs", "tune.workers")
STEPS = {"study": ("create_study",), "trials": ("run_trials",),
         "report": ("summarize_study", "register_best_trial")}  # fmt: skip


@dataclass(frozen=True)
class TuneCompileOptions:
    """How the ``tune`` pipeline compiles.

    Attributes:
        image: project image (see the Dockerfile); env: Kedro environment of the tasks.
        pvc: existing PVC mounted at ``data_mount`` in every task (the image cache, the trials'
            checkpoints and, by default, the study).
        workers: parallel trial tasks.
        storage: default of the ``tune_storage`` run parameter (the study's SQLAlchemy URL).
        gpu, gpu_type, cpu, memory: resources of each trial task (0 / None: none requested).
        shm_size: memory-backed ``/dev/shm`` of the trial tasks (torch loader workers).
        mlflow_tracking_uri: default of the ``mlflow_tracking_uri`` run parameter.
        project_dir: the project root in the image.
    """

    image: str = "yolo-mlops:latest"
    env: str | None = None
    pvc: str = "yolo-mlops-data"
    data_mount: str = "/app/data"
    workers: int = 2
    storage: str = PVC_STORAGE
    gpu: int = 0
    gpu_type: str = "nvidia.com/gpu"
    cpu: str | None = None
    memory: str | None = None
    shm_size: str = "2Gi"
    mlflow_tracking_uri: str = ""
    project_dir: str = "/app"


def _container(options: TuneCompileOptions, step: str, args: list) -> dsl.ContainerSpec:
    fixed = ["--step", step, "--project-dir", options.project_dir]
    fixed += ["--env", options.env] if options.env else []
    return dsl.ContainerSpec(image=options.image, command=["python", "-m", MODULE],
                             args=[*fixed, *args])  # fmt: skip


def _overrides(storage, study_name, n_trials, epochs) -> list:
    return ["--param", f"tune.storage={storage}", "--param", f"tune.study_name={study_name}",
            "--param", f"tune.n_trials={n_trials}", "--param", f"tune.epochs={epochs}"]  # fmt: skip


def _components(options: TuneCompileOptions):
    """The three container components (their inputs are the run parameters and the run id).

    kfp calls a container component's function with positional arguments, one per input.
    """
    # ruff: noqa: PLR0917
    # fmt: off

    @dsl.container_component
    def tune_study(mlflow_tracking_uri: str, tune_storage: str, study_name: str, n_trials: int,
                   epochs: int, resume: str, run_name: str, run_id_out: dsl.OutputPath(str)):
        return _container(options, "study", [
            *_overrides(tune_storage, study_name, n_trials, epochs), "--param",
            f"tune.resume={resume}", "--tracking-uri", mlflow_tracking_uri, "--create-run",
            "--run-name", run_name, "--run-id-output", run_id_out])  # fmt: skip

    @dsl.container_component
    def tune_trials(mlflow_tracking_uri: str, tune_storage: str, study_name: str,
                    n_trials: int, epochs: int, run_id: str, worker: int,
                    run_id_out: dsl.OutputPath(str)):
        return _container(options, "trials", [
            *_overrides(tune_storage, study_name, n_trials, epochs), "--param", "tune.workers=1",
            "--tracking-uri", mlflow_tracking_uri, "--run-id", run_id, "--worker", worker,
            "--run-id-output", run_id_out])  # fmt: skip

    @dsl.container_component
    def tune_report(mlflow_tracking_uri: str, tune_storage: str, study_name: str,
                    n_trials: int, epochs: int, run_id: str, run_id_out: dsl.OutputPath(str)):
        return _container(options, "report", [
            *_overrides(tune_storage, study_name, n_trials, epochs), "--tracking-uri",
            mlflow_tracking_uri, "--run-id", run_id, "--finish-run",
            "--run-id-output", run_id_out])  # fmt: skip

    # fmt: on
    return tune_study, tune_trials, tune_report


def _mount(task_: dsl.PipelineTask, options: TuneCompileOptions, shm: bool = False) -> None:
    from kfp import kubernetes

    if options.pvc:
        kubernetes.mount_pvc(task_, pvc_name=options.pvc, mount_path=options.data_mount)
    if shm:
        size = options.shm_size or None
        kubernetes.empty_dir_mount(task_, volume_name="dshm", mount_path="/dev/shm",
                                   medium="Memory", size_limit=size)  # fmt: skip


def build_tune_pipeline(options: TuneCompileOptions, tune: dict):
    """The KFP pipeline; ``tune`` (the project's ``tune`` block) gives the run parameters'
    defaults (study name, trials, epochs)."""
    study_step, trials_step, report_step = _components(options)
    # kfp calls the pipeline function with positional arguments, one per run parameter

    @dsl.pipeline(name="yolo-mlops-tune", description="Optuna study: parallel trial tasks")
    def tune_pipeline(
        mlflow_tracking_uri: str = options.mlflow_tracking_uri,
        tune_storage: str = options.storage,
        study_name: str = str(tune.get("study_name", "yolo11-tune")),
        n_trials: int = int(tune.get("n_trials", 16)),
        epochs: int = int(tune.get("epochs", 30)),
        resume: str = "false",
    ):
        common = {"mlflow_tracking_uri": mlflow_tracking_uri, "tune_storage": tune_storage,
                  "study_name": study_name, "n_trials": n_trials, "epochs": epochs}  # fmt: skip
        study = study_step(**common, resume=resume, run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
        study.set_display_name("study").set_caching_options(False)
        _mount(study, options)
        run_id = study.outputs[RUN_ID_OUTPUT]
        with dsl.ParallelFor(items=list(range(options.workers)),
                             parallelism=options.workers) as worker:  # fmt: skip
            trials = trials_step(**common, run_id=run_id, worker=worker)
            trials.set_display_name("trials").set_caching_options(False)
            _mount(trials, options, shm=True)
            set_resources(trials, options)
        report = report_step(**common, run_id=run_id).after(trials)
        report.set_display_name("report").set_caching_options(False)
        _mount(report, options)

    return tune_pipeline


def compile_tune(options: TuneCompileOptions, tune: dict, output: str | Path) -> Path:
    """Write the KFP IR YAML of the ``tune`` pipeline to ``output``; returns its path."""
    if options.workers < 1:
        raise ValueError("the tune pipeline needs at least one trial task (--workers)")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_tune_pipeline(options, tune), package_path=str(output))
    return output


def run_step(stage: task.Stage, run: task.SharedRun) -> str:
    """``kedro run --pipeline tune --nodes ...`` for one task, in the execution's MLflow run
    (created by the study task, joined by the others, ended by the report task or a failure).

    Raises:
        StageFailedError: ``kedro run`` failed.
    """
    for layer in task.DATA_LAYERS:
        (Path(stage.project_dir) / "data" / layer).mkdir(parents=True, exist_ok=True)
    params = {k: v for k, v in stage.params.items() if str(v) != ""}
    params |= {k: int(float(params[k])) for k in INT_KEYS if k in params}
    stage = replace(stage, params=params)
    if run.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = run.tracking_uri
    owns_run = run.create and not run.run_id
    run_id = task.start_shared_run(stage, run.name or "kfp-tune") if owns_run else run.run_id
    command = task.kedro_run_command(stage.nodes, stage.env, stage.params)
    command += ["--pipeline", PIPELINE]
    environment = dict(os.environ) | ({"MLFLOW_RUN_ID": run_id} if run_id else {})
    logger.info("tune step %r: %s", stage.name, " ".join(command))
    completed = subprocess.run(command, cwd=stage.project_dir, env=environment, check=False)
    if owns_run:
        task.release_shared_run()
    succeeded = completed.returncode == 0
    if run_id and (run.finish or not succeeded):
        task.end_shared_run(run_id, succeeded, stage)
    if not succeeded:
        raise task.StageFailedError(f"tune step {stage.name!r} exited with {completed.returncode}")
    return run_id


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the tune tasks: ``python -m yolo_mlops.kubeflow.tune --step ...``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description="Run one task of the Kubeflow tune pipeline.")
    parser.add_argument("--step", required=True, choices=sorted(STEPS))
    parser.add_argument("--project-dir", default=".")
    parser.add_argument("--env", default="")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tracking-uri", default="")
    parser.add_argument("--run-id", default="")
    parser.add_argument("--create-run", action="store_true")
    parser.add_argument("--run-name", default="")
    parser.add_argument("--finish-run", action="store_true")
    parser.add_argument("--worker", default="0", help="index of this trial task (logs only)")
    parser.add_argument("--run-id-output", default="")
    args = parser.parse_args(argv)
    stage = task.Stage(name=f"tune-{args.step}-{args.worker}", nodes=STEPS[args.step],
                       project_dir=Path(args.project_dir).resolve(), env=args.env or None,
                       params=dict(item.split("=", 1) for item in args.param))  # fmt: skip
    run = task.SharedRun(run_id=args.run_id, create=args.create_run, finish=args.finish_run,
                         name=args.run_name, tracking_uri=args.tracking_uri)  # fmt: skip
    run_id = run_step(stage, run)
    if args.run_id_output:
        Path(args.run_id_output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.run_id_output).write_text(run_id)


if __name__ == "__main__":
    main()
