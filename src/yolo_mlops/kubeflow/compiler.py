"""Compile a Kedro pipeline into a KFP v2 pipeline (IR YAML) with the kfp SDK.

One KFP task per stage group (see :mod:`yolo_mlops.kubeflow.grouping`); task edges follow the
Kedro dataset dependencies between groups, and the MLflow run id flows along them: each task
takes the run id from its first upstream task (a second root, if any, takes it from the first
task, which adds that one edge). The sink tasks (no downstream task) end that run FINISHED;
see :func:`sink_stages`. Data crosses tasks through persisted datasets on a PVC mounted
at ``/app/data`` (``data/...`` catalog paths relative to the working dir ``/app``).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from kfp import compiler, dsl

from yolo_mlops.kubeflow.components import (
    CONTAINER_RUN_ID_OUTPUT,
    LIGHTWEIGHT_RUN_ID_OUTPUT,
    RUN_ID_INPUT,
    RUN_NAME_INPUT,
    TaskPlan,
    container_stage_component,
    lightweight_settings,
    lightweight_stage_component,
)
from yolo_mlops.kubeflow.grouping import STAGE_TAGS, StageGroup, group_stages, preflight_check
from yolo_mlops.kubeflow.parameters import (
    PIPELINE_PARAMETERS,
    configured_kedro_keys,
    parameter_defaults,
)
from yolo_mlops.kubeflow.secrets import SecretEnv, use_secrets

logger = logging.getLogger(__name__)

SHM_VOLUME = "dshm"


@dataclass(frozen=True)
class CompileOptions:
    """How the Kedro pipeline becomes a KFP pipeline.

    Attributes:
        image: project image the container tasks run in (see the Dockerfile).
        env: Kedro environment for the tasks and for reading catalog/parameter defaults.
        pvc: name of an existing PersistentVolumeClaim mounted at ``data_mount`` in every task;
            ``""`` mounts none (then the catalog must point at object storage).
        data_mount: where the PVC is mounted (the project's ``data/`` folder in the image).
        gpu: GPUs requested by the resource stages (0: none).
        gpu_type: accelerator resource name.
        cpu: CPU request and limit of the resource stages (e.g. ``"4"``), or ``None``.
        memory: memory request and limit of the resource stages (e.g. ``"16Gi"``), or ``None``.
        shm_size: size limit of the memory-backed ``/dev/shm`` (``""``: no limit).
        resource_stages: stages that get gpu/cpu/memory.
        shm_stages: stages that get the ``/dev/shm`` emptyDir (torch data-loader workers).
        mlflow_tracking_uri: default of the ``mlflow_tracking_uri`` pipeline parameter
            (``""``: the project's configured default).
        local: emit lightweight Python components for ``kfp.local.SubprocessRunner``.
        project_dir: project root the tasks run in (``/app`` in the image; local: this project).
        group_by: ``"tag"`` (stage tags, namespace fallback) or ``"namespace"``.
        stage_tags: the tags that name stages, in pipeline order.
        caching: let KFP cache task results (off: tasks write to the shared volume).
        train_nodes: > 1: the train task submits a Kubeflow Trainer TrainJob of this many
            nodes (``gpu`` per node) instead of training in its own pod.
        trainjob_runtime: the ``ClusterTrainingRuntime`` of that TrainJob.
        keep_trainjob: leave the TrainJob after it ends (default: delete it).
        secrets: Kubernetes Secrets every task reads into its environment (e.g. the tracking
            server's pipeline account, :data:`~yolo_mlops.kubeflow.secrets.TRACKING_SECRET`);
            empty by default: a task naming a Secret the namespace lacks does not start.
    """

    image: str = "yolo-mlops:latest"
    env: str | None = None
    pvc: str = "yolo-mlops-data"
    data_mount: str = "/app/data"
    gpu: int = 0
    gpu_type: str = "nvidia.com/gpu"
    cpu: str | None = None
    memory: str | None = None
    shm_size: str = "2Gi"
    resource_stages: tuple[str, ...] = ("train",)
    shm_stages: tuple[str, ...] = ("train", "evaluate")
    mlflow_tracking_uri: str = ""
    local: bool = False
    project_dir: str = "/app"
    group_by: str = "tag"
    stage_tags: tuple[str, ...] = STAGE_TAGS
    caching: bool = False
    train_nodes: int = 1
    trainjob_runtime: str = "torch-distributed"
    keep_trainjob: bool = False
    secrets: tuple[SecretEnv, ...] = ()
    extra_env: Mapping[str, str] = field(
        default_factory=lambda: {"KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    )


def task_parameters(group: StageGroup, configured: set[str]) -> tuple[list[str], list[str]]:
    """Pipeline parameters a stage's task receives, and those it passes to ``kedro --params``.

    A parameter is an input when it sets an environment variable (every task: the tracking
    hook runs in each) or when it is an override. It is an override when its Kedro key is
    configured and the stage's nodes read its block.

    Returns:
        ``(inputs, overrides)``, both in mapping order.
    """
    inputs, overrides = [], []
    for parameter in PIPELINE_PARAMETERS:
        reads_block = parameter.block in group.parameter_blocks or "*" in group.parameter_blocks
        is_override = parameter.name in configured and (
            reads_block or parameter.env_var is not None
        )
        if is_override:
            overrides.append(parameter.name)
        if is_override or parameter.env_var:
            inputs.append(parameter.name)
    return inputs, overrides


def sink_stages(groups: Sequence[StageGroup]) -> set[str]:
    """Names of the groups no other task waits for: they mark the MLflow run FINISHED.

    A group is fed when another group depends on it, and the first group also when a second
    root takes the run id from it (see :func:`_add_tasks`). A one-group pipeline's only
    task is its sink.
    """
    fed = {dependency for group in groups for dependency in group.dependencies}
    if groups and sum(1 for group in groups if not group.dependencies) > 1:
        fed.add(groups[0].name)
    return {group.name for group in groups if group.name not in fed}


def train_task_args(options: CompileOptions) -> list[str]:
    """Fixed arguments of the train task: ``gpu`` > 1 runs that many processes
    (``training.nproc``, ``training.device=cuda``); ``train_nodes`` > 1 adds ``--trainjob``.

    The same ``kedro run --nodes train_model`` runs either way; see ``pipelines/train/launch``.
    """
    args = []
    if options.gpu > 1 or options.train_nodes > 1:
        args += ["--param", f"training.nproc={max(options.gpu, 1)}"]
        args += ["--param", f"training.device={'cuda' if options.gpu else 'cpu'}"]
    if options.train_nodes > 1:
        from yolo_mlops.kubeflow.trainjob import TrainJobOptions

        job = TrainJobOptions(
            nodes=options.train_nodes, image=options.image, runtime=options.trainjob_runtime,
            pvc=options.pvc, data_mount=options.data_mount, gpu=options.gpu,
            gpu_type=options.gpu_type, cpu=options.cpu, memory=options.memory,
            shm_size=options.shm_size, keep_job=options.keep_trainjob,
        )  # fmt: skip
        args += ["--trainjob", json.dumps(dataclasses.asdict(job), sort_keys=True)]
    return args


def _kubernetes():
    """``kfp.kubernetes`` (package kfp-kubernetes), needed for volumes on the cluster tasks."""
    try:
        from kfp import kubernetes
    except ImportError as error:  # pragma: no cover - a dependency in pyproject.toml
        raise ImportError(
            "the PVC and /dev/shm mounts need kfp-kubernetes: pip install kfp-kubernetes==2.17.3"
        ) from error
    return kubernetes


def _configure_container_task(task: dsl.PipelineTask, group: StageGroup, options: CompileOptions):
    for name, value in options.extra_env.items():
        task.set_env_variable(name, value)
    use_secrets(task, options.secrets)
    if options.pvc or group.name in options.shm_stages:
        k8s = _kubernetes()
    if options.pvc:
        k8s.mount_pvc(task, pvc_name=options.pvc, mount_path=options.data_mount)
    if group.name in options.shm_stages:
        k8s.empty_dir_mount(
            task,
            volume_name=SHM_VOLUME,
            mount_path="/dev/shm",
            medium="Memory",
            size_limit=options.shm_size or None,
        )
    # A multi-node train task only submits the TrainJob: the job's pods get the resources.
    if group.name in options.resource_stages and options.train_nodes <= 1:
        set_resources(task, options)


def set_resources(task: dsl.PipelineTask, options: Any) -> None:
    """Request ``options.gpu`` GPUs of ``options.gpu_type`` and, where set, ``options.cpu`` and
    ``options.memory`` (request = limit) for ``task``."""
    if options.gpu:
        task.set_accelerator_type(options.gpu_type).set_accelerator_limit(options.gpu)
    if options.cpu:
        task.set_cpu_request(options.cpu).set_cpu_limit(options.cpu)
    if options.memory:
        task.set_memory_request(options.memory).set_memory_limit(options.memory)


def build_pipeline(
    kedro_pipeline: Pipeline,
    catalog: DataCatalog,
    parameters: Mapping[str, Any],
    options: CompileOptions,
    *,
    name: str = "yolo-mlops",
):
    """Build the KFP pipeline (a ``GraphComponent``) for a Kedro pipeline.

    Args:
        kedro_pipeline: the Kedro pipeline to split into stage tasks.
        catalog: the catalog of ``options.env`` (for the pre-flight check).
        parameters: the resolved Kedro parameters of ``options.env`` (defaults, applicability).
        options: see :class:`CompileOptions`.
        name: the KFP pipeline name.

    Raises:
        GroupingError, PreflightError: see :mod:`yolo_mlops.kubeflow.grouping`.
    """
    groups = group_stages(kedro_pipeline, options.stage_tags, options.group_by)
    preflight_check(groups, catalog)
    defaults = _pipeline_defaults(parameters, options)
    for stage in (*options.resource_stages, *options.shm_stages):
        if stage not in {g.name for g in groups}:
            logger.info("Stage %r is not in this pipeline: its resource options are unused", stage)
    plans = plan_tasks(groups, configured_kedro_keys(parameters))

    def pipeline_body(*values):
        arguments = dict(zip([p.name for p in PIPELINE_PARAMETERS], values, strict=True))
        _add_tasks(plans, arguments, options)

    pipeline_body.__signature__ = inspect.Signature(
        [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=defaults[p.name],
                annotation=p.type,
            )
            for p in PIPELINE_PARAMETERS
        ]
    )
    pipeline_body.__name__ = name.replace("-", "_")
    stages = " -> ".join(g.name for g in groups)
    pipeline_body.__doc__ = f"Kedro pipeline compiled by yolo_mlops.kubeflow: {stages}"
    return dsl.pipeline(name=name)(pipeline_body)


def _add_tasks(plans: Sequence[TaskPlan], arguments: Mapping[str, Any], options: CompileOptions):
    """Add a task per plan to the pipeline being built; each gets the run id from its first
    upstream task (a root other than the first task: from the first task)."""
    tasks: dict[str, dsl.PipelineTask] = {}
    for plan in plans:
        group = plan.group
        upstream = tasks[group.dependencies[0]] if group.dependencies else None
        if not plan.creates_run and upstream is None:
            logger.info("Stage %r has no upstream: it joins the run of the first task", group)
            upstream = tasks[plans[0].group.name]
        task = _stage_task(plan, upstream, arguments, options)
        task.set_display_name(group.name)
        task.set_caching_options(options.caching)
        for dependency in group.dependencies[1:]:
            task.after(tasks[dependency])
        tasks[group.name] = task


def plan_tasks(groups: Sequence[StageGroup], configured: set[str]) -> list[TaskPlan]:
    """One task per group: its parameters, and its part in the shared MLflow run (the first
    task creates it, the sinks finish it)."""
    sinks = sink_stages(groups)
    plans = []
    for index, group in enumerate(groups):
        names, overrides = task_parameters(group, configured)
        plans.append(
            TaskPlan(
                group,
                tuple(names),
                tuple(overrides),
                creates_run=index == 0,
                finishes_run=group.name in sinks,
            )
        )
    return plans


def _pipeline_defaults(parameters: Mapping[str, Any], options: CompileOptions) -> dict[str, Any]:
    """The pipeline parameters' defaults; warns when the cluster pods would get no MLflow URI."""
    defaults = parameter_defaults(parameters)
    if options.mlflow_tracking_uri:
        defaults["mlflow_tracking_uri"] = options.mlflow_tracking_uri
    if not options.local and not defaults["mlflow_tracking_uri"]:
        logger.warning(
            "No MLflow tracking URI: each pod would use its own embedded store. Pass "
            "--mlflow-tracking-uri (a server the pods reach) or set mlflow_tracking_uri per run."
        )
    return defaults


def _stage_task(
    plan: TaskPlan,
    upstream: dsl.PipelineTask | None,
    arguments: Mapping[str, Any],
    options: CompileOptions,
) -> dsl.PipelineTask:
    """The task of ``plan`` in the pipeline being built; ``upstream`` hands it the run id."""
    group = plan.group
    if options.local:
        component = lightweight_stage_component(group, options.image)
        return component(
            stage=group.name,
            nodes=",".join(group.nodes),
            project_dir=options.project_dir,
            env=options.env or "",
            settings=lightweight_settings(plan),
            run_id="" if plan.creates_run else upstream.outputs[LIGHTWEIGHT_RUN_ID_OUTPUT],
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER if plan.creates_run else "",
            **arguments,
        )
    component = container_stage_component(
        plan,
        image=options.image,
        env=options.env,
        project_dir=options.project_dir,
        extra_args=train_task_args(options) if group.name == "train" else (),
    )
    if plan.creates_run:
        link = {RUN_NAME_INPUT: dsl.PIPELINE_JOB_NAME_PLACEHOLDER}
    else:
        link = {RUN_ID_INPUT: upstream.outputs[CONTAINER_RUN_ID_OUTPUT]}
    task = component(**{n: arguments[n] for n in plan.parameter_names}, **link)
    _configure_container_task(task, group, options)
    return task


def compile_pipeline(
    kedro_pipeline: Pipeline,
    catalog: DataCatalog,
    parameters: Mapping[str, Any],
    options: CompileOptions,
    output: str | Path,
    *,
    name: str = "yolo-mlops",
) -> Path:
    """Compile a Kedro pipeline to a KFP IR YAML file at ``output``; returns its path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    pipeline = build_pipeline(kedro_pipeline, catalog, parameters, options, name=name)
    compiler.Compiler().compile(pipeline, package_path=str(output))
    logger.info("Wrote KFP pipeline %r to %s", name, output)
    return output


def load_project(project_path: str | Path, pipeline_name: str, env: str | None):
    """``(pipeline, catalog, parameters)`` of a Kedro project, as ``kedro run`` would see them."""
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project_path = Path(project_path).resolve()
    bootstrap_project(project_path)
    if pipeline_name not in pipelines:
        raise KeyError(f"no pipeline {pipeline_name!r}; registered: {sorted(pipelines)}")
    with KedroSession.create(project_path=project_path, env=env) as session:
        context = session.load_context()
        return pipelines[pipeline_name], context.catalog, context.params


def compile_project(
    project_path: str | Path,
    pipeline_name: str,
    options: CompileOptions,
    output: str | Path,
) -> Path:
    """Compile a registered pipeline of the Kedro project at ``project_path``.

    The local variant runs the tasks in ``project_path`` unless ``options.project_dir`` is set
    to something other than the image default.
    """
    kedro_pipeline, catalog, parameters = load_project(project_path, pipeline_name, options.env)
    if options.local and options.project_dir == CompileOptions.project_dir:
        options = replace(options, project_dir=str(Path(project_path).resolve()))
    name = f"yolo-mlops-{pipeline_name}".replace("_", "-")
    return compile_pipeline(kedro_pipeline, catalog, parameters, options, output, name=name)
