"""`--gpu N` and `--train-nodes M` in the compiled spec: the train task's processes and TrainJob."""

from __future__ import annotations

import json
from dataclasses import replace

from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

from tests.kubeflow.fake_project import PARAMETERS, fake_catalog
from tests.kubeflow.test_compiler import CLUSTER
from yolo_mlops.kubeflow.compiler import compile_pipeline
from yolo_mlops.kubeflow.trainjob import TrainJobOptions, build_manifest
from yolo_mlops.pipelines.train.launch import worker_command


def train_args(tmp_path, fake_pipelines, parse_compiled, options) -> tuple[list[str], dict]:
    path = compile_pipeline(
        fake_pipelines["training"], fake_catalog(), PARAMETERS, options, tmp_path / "p.yaml"
    )
    container = parse_compiled(path).executor("train")["container"]
    return container["args"], container.get("resources", {})


def test_gpu_n_makes_the_train_task_run_n_processes(
    tmp_path, fake_pipelines, parse_compiled, kfp_kubernetes
):
    args, resources = train_args(tmp_path, fake_pipelines, parse_compiled, CLUSTER)
    params = [args[i + 1] for i, a in enumerate(args) if a == "--param"]
    assert "training.nproc=2" in params and "training.device=cuda" in params
    assert resources["accelerator"]["resourceCount"] == "2"
    assert "--trainjob" not in args


def test_train_nodes_makes_the_train_task_submit_a_trainjob(
    tmp_path, fake_pipelines, parse_compiled, kfp_kubernetes
):
    options = replace(CLUSTER, train_nodes=2, gpu=4)
    args, resources = train_args(tmp_path, fake_pipelines, parse_compiled, options)
    assert resources == {}  # the task only submits; the job's pods get the GPUs
    job = TrainJobOptions(**json.loads(args[args.index("--trainjob") + 1]))
    assert (job.nodes, job.gpu, job.image, job.pvc) == (2, 4, CLUSTER.image, "yolo-data")
    cache, params = "/app/data/05_model_input/image_cache", "/app/data/06_models/run/p.yml"
    command = worker_command(cache, params, python="python")
    env = {"MLFLOW_RUN_ID": "run-1", "MLFLOW_TRACKING_URI": CLUSTER.mlflow_tracking_uri}
    manifest = build_manifest(job, "yolo-train-x", command, env, nproc_per_node=4)
    trainer = TrainerV1alpha1TrainJob.from_dict(manifest).spec.trainer
    assert trainer.image == CLUSTER.image and trainer.num_nodes == 2
    assert trainer.resources_per_node.limits["nvidia.com/gpu"].actual_instance == "4"
    assert trainer.resources_per_node.limits["memory"].actual_instance == "24Gi"
    assert {e.name: e.value for e in trainer.env}["MLFLOW_RUN_ID"] == "run-1"
    params = [args[i + 1] for i, a in enumerate(args) if a == "--param"]
    assert "training.nproc=4" in params and "training.device=cuda" in params
