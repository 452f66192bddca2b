"""KFP components that run one stage group of the Kedro project.

Two kinds, same behaviour (both end in :func:`yolo_mlops.kubeflow.task.run_stage`):

- :func:`container_stage_component` — for a cluster: a container component on the project image
  running ``python -m yolo_mlops.kubeflow.task --nodes ... --param key=VALUE ...``, whose inputs
  are exactly the pipeline parameters the stage uses. One component per stage, named after it.
- :func:`lightweight_stage_component` — for ``kfp.local.SubprocessRunner``, which only runs
  lightweight Python components: :func:`kedro_stage` below, executed in the current interpreter.

Every component outputs the MLflow run id it logged into; the next task takes it as input.
The sink tasks (no downstream task) also mark that run FINISHED after their stage succeeds.
"""

# No `from __future__ import annotations` here: kfp reads the annotations of kedro_stage at
# import time and takes string annotations for artifact types.
import copy
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl.container_component_class import ContainerComponent
from kfp.dsl.python_component import PythonComponent

from yolo_mlops.kubeflow.grouping import StageGroup
from yolo_mlops.kubeflow.parameters import PARAMETERS_BY_NAME, PIPELINE_PARAMETERS

RUN_ID_INPUT = "run_id"
RUN_NAME_INPUT = "run_name"
CONTAINER_RUN_ID_OUTPUT = "run_id_out"
LIGHTWEIGHT_RUN_ID_OUTPUT = "Output"
TASK_MODULE = "yolo_mlops.kubeflow.task"


@dataclass(frozen=True)
class TaskPlan:
    """One stage's task in the compiled pipeline.

    Attributes:
        group: the stage group whose nodes the task runs.
        parameter_names: the pipeline parameters the task takes as inputs.
        overrides: those of them it passes on as ``--param kedro.key=VALUE`` (see
            ``parameters.py``).
        creates_run: the first task: it creates the shared MLflow run (input ``run_name``);
            later tasks join it (input ``run_id``).
        finishes_run: a sink task: it marks the run FINISHED after its stage succeeds.
    """

    group: StageGroup
    parameter_names: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    creates_run: bool = False
    finishes_run: bool = False


def container_stage_component(
    plan: TaskPlan,
    *,
    image: str,
    env: str | None,
    project_dir: str = "/app",
    extra_args: Sequence[str] = (),
) -> ContainerComponent:
    """A container component running ``plan.group``'s nodes in ``image``.

    Inputs: the pipeline parameters in ``plan.parameter_names`` (typed as in the mapping), then
    ``run_name`` (first task: name of the MLflow run it creates) or ``run_id`` (later tasks).
    ``plan.finishes_run`` adds ``--finish-run``. ``extra_args`` are fixed task arguments (the
    train stage's ``--param training.nproc=N`` and ``--trainjob``, see
    ``compiler.train_task_args``). Output: ``run_id_out`` (string), the MLflow run id.
    """
    group = plan.group
    signature = _container_signature(plan)
    fixed = ["--stage", group.name, "--nodes", ",".join(group.nodes), "--project-dir", project_dir]
    fixed += ["--env", env] if env else []

    def body(*placeholders):
        values = dict(zip(signature.parameters, placeholders, strict=True))
        args = [*fixed, *_parameter_args(plan, values), *_run_args(plan, values), *extra_args]
        args += ["--run-id-output", values[CONTAINER_RUN_ID_OUTPUT]]
        return dsl.ContainerSpec(image=image, command=["python", "-m", TASK_MODULE], args=args)

    body.__signature__ = signature
    body.__name__ = group.task_name.replace("-", "_")
    body.__doc__ = f"Kedro stage {group.name!r}: kedro run --nodes {','.join(group.nodes)}"
    return dsl.container_component(body)


def _container_signature(plan: TaskPlan) -> inspect.Signature:
    """The component's inputs (parameters, then ``run_name``/``run_id``) and its output."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    inputs = [
        inspect.Parameter(name, kind, annotation=PARAMETERS_BY_NAME[name].type)
        for name in plan.parameter_names
    ]
    link_input = RUN_NAME_INPUT if plan.creates_run else RUN_ID_INPUT
    return inspect.Signature(
        [
            *inputs,
            inspect.Parameter(link_input, kind, annotation=str),
            inspect.Parameter(CONTAINER_RUN_ID_OUTPUT, kind, annotation=dsl.OutputPath(str)),
        ]
    )


def _parameter_args(plan: TaskPlan, values: Mapping[str, Any]) -> list[str]:
    """``--param kedro.key=VALUE`` per override, ``--tracking-uri`` for the tracking URI."""
    args = []
    for name in plan.parameter_names:
        parameter = PARAMETERS_BY_NAME[name]
        if parameter.kedro_key and name in plan.overrides:
            args += ["--param", f"{parameter.kedro_key}={values[name]}"]
        if parameter.env_var == "MLFLOW_TRACKING_URI":
            args += ["--tracking-uri", values[name]]
    return args


def _run_args(plan: TaskPlan, values: Mapping[str, Any]) -> list[str]:
    """Create the shared run (first task) or join it; ``--finish-run`` for a sink."""
    if plan.creates_run:
        args = ["--create-run", "--run-name", values[RUN_NAME_INPUT]]
    else:
        args = ["--run-id", values[RUN_ID_INPUT]]
    return [*args, "--finish-run"] if plan.finishes_run else args


def kedro_stage(
    *,
    stage: str,
    nodes: str,
    project_dir: str,
    env: str,
    settings: str,
    run_id: str,
    run_name: str,
    imgsz: int,
    epochs: int,
    batch: int,
    model_scale: str,
    data_source: str,
    mlflow_tracking_uri: str,
    registered_model_name: str,
) -> str:
    """Lightweight task body: run one stage's Kedro nodes, return the MLflow run id.

    ``settings`` is JSON ``{"params": {pipeline parameter: kedro key}, "create_run": bool,
    "finish_run": bool}``.
    The parameter arguments must match ``PIPELINE_PARAMETERS`` (checked by a test).
    """
    arguments = dict(locals())
    import json as json_module

    from yolo_mlops.kubeflow.task import SharedRun, Stage, run_stage

    spec = json_module.loads(settings)
    params = {key: arguments[name] for name, key in spec["params"].items()}
    stage_run = Stage(
        name=stage, nodes=nodes.split(","), project_dir=project_dir, env=env or None, params=params
    )
    shared = SharedRun(
        run_id=run_id,
        create=spec["create_run"],
        finish=spec.get("finish_run", False),
        name=run_name,
        tracking_uri=mlflow_tracking_uri,
    )
    return run_stage(stage_run, shared)


_LIGHTWEIGHT = dsl.component(
    kedro_stage, base_image="python:3.11-slim", install_kfp_package=False, packages_to_install=[]
)


def lightweight_stage_component(group: StageGroup, image: str) -> PythonComponent:
    """The lightweight :func:`kedro_stage` component on ``image`` (which must have the project
    installed), renamed after ``group`` so the KFP task name is the stage name (the executed
    function stays ``kedro_stage``)."""
    component = copy.deepcopy(_LIGHTWEIGHT)
    component.component_spec.name = group.task_name
    component.component_spec.implementation.container.image = image
    component.name = group.task_name
    return component


def lightweight_settings(plan: TaskPlan) -> str:
    """The ``settings`` JSON for :func:`kedro_stage` (see :class:`TaskPlan`)."""
    params = {name: PARAMETERS_BY_NAME[name].kedro_key for name in plan.overrides}
    settings = {"params": params, "create_run": plan.creates_run, "finish_run": plan.finishes_run}
    return json.dumps(settings, sort_keys=True)


def lightweight_parameter_names() -> list[str]:
    """The pipeline parameters :func:`kedro_stage` takes, in signature order."""
    fixed = {"stage", "nodes", "project_dir", "env", "settings", "run_id", "run_name"}
    return [n for n in inspect.signature(kedro_stage).parameters if n not in fixed]


if lightweight_parameter_names() != [p.name for p in PIPELINE_PARAMETERS]:  # pragma: no cover
    raise RuntimeError("kedro_stage's parameter arguments must match PIPELINE_PARAMETERS")
