"""Compiling a Kedro pipeline to KFP IR: task graph, parameters, train resources, /dev/shm, PVC."""

from __future__ import annotations

import inspect
import json

import pytest
from kfp.components import load_component_from_file
from kfp.pipeline_spec.pipeline_spec_pb2 import ParameterType

from tests.kubeflow.fake_project import EDGES, PARAMETERS, STAGES, fake_catalog
from yolo_mlops.kubeflow.compiler import CompileOptions, compile_pipeline, sink_stages
from yolo_mlops.kubeflow.components import kedro_stage
from yolo_mlops.kubeflow.grouping import PreflightError, StageGroup, group_stages
from yolo_mlops.kubeflow.parameters import PIPELINE_PARAMETERS

CLUSTER = CompileOptions(
    image="registry.example/yolo-mlops:1.0",
    env="ci",
    pvc="yolo-data",
    gpu=2,
    cpu="6",
    memory="24Gi",
    shm_size="4Gi",
    mlflow_tracking_uri="http://mlflow.mlflow.svc:5000",
)


@pytest.fixture
def compiled(tmp_path, fake_pipelines, parse_compiled, kfp_kubernetes):
    path = compile_pipeline(
        fake_pipelines["training"], fake_catalog(), PARAMETERS, CLUSTER, tmp_path / "p.yaml"
    )
    return parse_compiled(path)


def expected_edges(pipeline) -> dict[str, list[str]]:
    """KFP dependentTasks as implied by the Kedro grouping."""
    return {g.task_name: sorted(g.dependencies) for g in group_stages(pipeline)}


def test_task_graph_equals_kedro_stage_grouping(compiled, fake_pipelines):
    assert sorted(compiled.tasks) == sorted(STAGES)  # a protobuf map: order is in the edges
    assert compiled.edges() == expected_edges(fake_pipelines["training"])
    assert compiled.edges() == {stage: sorted(deps) for stage, deps in EDGES.items()}


def test_each_task_runs_kedro_for_exactly_its_nodes(compiled, fake_pipelines):
    for group in group_stages(fake_pipelines["training"]):
        container = compiled.executor(group.task_name)["container"]
        assert container["image"] == CLUSTER.image
        assert container["command"] == ["python", "-m", "yolo_mlops.kubeflow.task"]
        args = container["args"]
        assert args[args.index("--nodes") + 1] == ",".join(group.nodes)
        assert args[args.index("--env") + 1] == "ci"


def test_pipeline_parameters_and_defaults_come_from_project_config(compiled):
    definitions = compiled.spec.root.input_definitions.parameters
    assert sorted(definitions) == sorted(p.name for p in PIPELINE_PARAMETERS)
    defaults = {name: d.default_value for name, d in definitions.items()}
    assert defaults["imgsz"].number_value == 640
    assert defaults["epochs"].number_value == 100
    assert defaults["model_scale"].string_value == "n"
    assert defaults["data_source"].string_value == "synthetic.zip"
    assert defaults["registered_model_name"].string_value == "fake-model"
    assert defaults["mlflow_tracking_uri"].string_value == CLUSTER.mlflow_tracking_uri
    kinds = {name: d.parameter_type for name, d in definitions.items()}
    integer, string = ParameterType.NUMBER_INTEGER, ParameterType.STRING
    assert kinds["imgsz"] == kinds["epochs"] == kinds["batch"] == integer
    assert kinds["model_scale"] == kinds["data_source"] == kinds["registered_model_name"] == string


def test_stage_gets_only_the_parameters_its_nodes_read(compiled):
    def params_of(task):
        return set(compiled.tasks[task].inputs.parameters) - {"run_id", "run_name"}

    assert params_of("train") == {"epochs", "batch", "model_scale", "mlflow_tracking_uri"}
    assert params_of("preprocess") == {"imgsz", "mlflow_tracking_uri"}
    assert params_of("validate") == {"mlflow_tracking_uri"}
    args = compiled.executor("train")["container"]["args"]
    assert "training.epochs={{$.inputs.parameters['epochs']}}" in args
    # tracking.uri is not configured in the fake project: only the env var is set
    assert not any(a.startswith("tracking.uri=") for a in args)
    assert "--tracking-uri" in args
    train_inputs = compiled.tasks["train"].inputs.parameters
    assert train_inputs["epochs"].component_input_parameter == "epochs"


def test_first_task_creates_the_mlflow_run_and_the_rest_join_it(compiled):
    first = compiled.tasks["ingest"].inputs.parameters
    assert first["run_name"].runtime_value.constant.string_value == "{{$.pipeline_job_name}}"
    assert "--create-run" in compiled.executor("ingest")["container"]["args"]
    for stage, upstream in EDGES.items():
        if not upstream:
            continue
        link = compiled.tasks[stage].inputs.parameters["run_id"].task_output_parameter
        assert (link.producer_task, link.output_parameter_key) == (upstream[0], "run_id_out")


def test_only_the_sink_task_finishes_the_mlflow_run(compiled):
    finishing = [s for s in STAGES if "--finish-run" in compiled.executor(s)["container"]["args"]]
    assert finishing == ["register"]  # the only task nothing waits for


def test_sinks_are_the_groups_no_task_waits_for():
    def groups(edges):
        return [StageGroup(name, dependencies=deps) for name, deps in edges.items()]

    assert sink_stages(groups(EDGES)) == {"register"}
    assert sink_stages(groups({"ingest": []})) == {"ingest"}  # creates and finishes the run
    assert sink_stages(groups({"ingest": [], "validate": ["ingest"], "train": ["ingest"]})) == {
        "validate",
        "train",
    }
    # a second root takes the run id from the first task, which then has a successor
    assert sink_stages(groups({"a": [], "b": []})) == {"b"}


def test_train_task_requests_gpu_cpu_memory(compiled):
    resources = compiled.executor("train")["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "2"
    assert resources["resourceCpuRequest"] == resources["resourceCpuLimit"] == "6"
    assert resources["resourceMemoryRequest"] == resources["resourceMemoryLimit"] == "24Gi"
    assert "resources" not in compiled.executor("ingest")["container"]


def test_train_task_has_memory_backed_dev_shm(compiled):
    mounts = compiled.kubernetes("train")["emptyDirMounts"]
    assert mounts == [
        {"volumeName": "dshm", "mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": "4Gi"}
    ]
    assert "emptyDirMounts" not in compiled.kubernetes("ingest")


def test_every_task_mounts_the_data_pvc(compiled):
    assert compiled.platform is not None
    for stage in STAGES:
        (mount,) = compiled.kubernetes(stage)["pvcMount"]
        assert mount["mountPath"] == "/app/data"
        assert mount["pvcNameParameter"]["runtimeValue"]["constant"] == "yolo-data"


def test_tasks_are_not_cached_and_set_telemetry_off(compiled):
    assert all(not t.caching_options.enable_cache for t in compiled.tasks.values())
    env = {e["name"]: e["value"] for e in compiled.executor("train")["container"]["env"]}
    assert env["KEDRO_DISABLE_TELEMETRY"] == "true"


def test_data_pipeline_compiles_without_train_resources(
    tmp_path, fake_pipelines, parse_compiled, kfp_kubernetes
):
    path = compile_pipeline(
        fake_pipelines["data"], fake_catalog(), PARAMETERS, CLUSTER, tmp_path / "data.yaml"
    )
    compiled = parse_compiled(path)
    assert compiled.edges() == {"ingest": [], "validate": ["ingest"]}
    assert "resources" not in compiled.executor("validate")["container"]


def test_compile_fails_on_memory_dataset_crossing_tasks(tmp_path, fake_pipelines):
    catalog = fake_catalog({"image_cache": {"type": "MemoryDataset"}})
    with pytest.raises(PreflightError, match="'image_cache'"):
        compile_pipeline(
            fake_pipelines["training"], catalog, PARAMETERS, CLUSTER, tmp_path / "p.yaml"
        )
    assert not (tmp_path / "p.yaml").exists()


def test_without_pvc_no_volume_is_mounted(tmp_path, fake_pipelines, parse_compiled):
    options = CompileOptions(pvc="", shm_stages=())
    path = compile_pipeline(
        fake_pipelines["data"], fake_catalog(), PARAMETERS, options, tmp_path / "p.yaml"
    )
    assert parse_compiled(path).platform is None


def test_local_variant_emits_lightweight_tasks_with_the_same_graph(
    tmp_path, fake_pipelines, parse_compiled
):
    options = CompileOptions(local=True, env="ci", project_dir=str(tmp_path))
    path = compile_pipeline(
        fake_pipelines["training"], fake_catalog(), PARAMETERS, options, tmp_path / "l.yaml"
    )
    compiled = parse_compiled(path)
    assert sorted(compiled.tasks) == sorted(STAGES)  # a protobuf map: order is in the edges
    assert compiled.edges() == expected_edges(fake_pipelines["training"])
    container = compiled.executor("train")["container"]
    assert "--function_to_execute" in container["args"]
    assert "kedro_stage" in container["args"]
    assert compiled.platform is None  # no Kubernetes settings for the local runner
    assert load_component_from_file(str(path)).name == "yolo-mlops"
    for stage in STAGES:
        settings = compiled.tasks[stage].inputs.parameters["settings"]
        spec = json.loads(settings.runtime_value.constant.string_value)
        assert spec["create_run"] == (stage == "ingest")
        assert spec["finish_run"] == (stage == "register")


def test_lightweight_component_arguments_match_the_parameter_mapping():
    names = list(inspect.signature(kedro_stage).parameters)
    assert names[-len(PIPELINE_PARAMETERS) :] == [p.name for p in PIPELINE_PARAMETERS]
