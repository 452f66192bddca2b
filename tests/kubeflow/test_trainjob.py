"""The TrainJob of ``--train-nodes``: manifest (SDK model classes) and submit/wait/fail logic
against a fake Kubernetes API server on 127.0.0.1."""

from __future__ import annotations

import pytest
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

from tests.kubeflow.fake_kubernetes import FakeKubernetes
from yolo_mlops.kubeflow.trainjob import (
    TrainJobFailedError,
    TrainJobOptions,
    build_manifest,
    run_trainjob,
)
from yolo_mlops.pipelines.train.launch import worker_command

COMMAND = worker_command("/app/data/05_model_input/image_cache",
                         "/app/data/06_models/run/launch_params.yml", python="python")  # fmt: skip
ENV = {"MLFLOW_RUN_ID": "abc123", "MLFLOW_TRACKING_URI": "http://mlflow:5000"}


def options(**values) -> TrainJobOptions:
    base = {"nodes": 2, "image": "registry/yolo-mlops:1", "gpu": 4, "cpu": "8",
            "memory": "32Gi", "namespace": "ml", "poll_s": 0.01}  # fmt: skip
    return TrainJobOptions(**(base | values))


def test_manifest_parses_with_the_sdk_and_names_image_volume_resources_and_env():
    manifest = build_manifest(options(), "yolo-train-1", COMMAND, ENV, nproc_per_node=4)
    job = TrainerV1alpha1TrainJob.from_dict(manifest)
    assert job.kind == "TrainJob" and job.api_version == "trainer.kubeflow.org/v1alpha1"
    assert job.spec.runtime_ref.name == "torch-distributed"
    trainer = job.spec.trainer
    assert trainer.image == "registry/yolo-mlops:1" and trainer.command == COMMAND
    assert trainer.num_nodes == 2 and trainer.num_proc_per_node == 4
    limits = trainer.resources_per_node.limits
    assert {key: value.actual_instance for key, value in limits.items()} == {
        "nvidia.com/gpu": "4", "cpu": "8", "memory": "32Gi"}  # fmt: skip
    assert {e.name: e.value for e in trainer.env} == ENV
    (patch,) = job.spec.runtime_patches
    (replicated,) = patch.training_runtime_spec.template.spec.replicated_jobs
    pod = replicated.template.spec.template.spec
    claim = next(v for v in pod.volumes if v.persistent_volume_claim)
    assert claim.persistent_volume_claim.claim_name == "yolo-mlops-data"
    mounts = {m.name: m.mount_path for m in pod.containers[0].volume_mounts}
    assert mounts[claim.name] == "/app/data" and mounts["dshm"] == "/dev/shm"


@pytest.mark.parametrize("values", [{"nodes": 1}, {"pvc": ""}])
def test_options_reject_one_node_or_no_shared_volume(values):
    with pytest.raises(ValueError, match="--train-nodes"):
        options(**values)


def test_job_runs_to_completion_and_is_deleted():
    with FakeKubernetes(["created", "running", "succeeded"]) as fake:
        name = run_trainjob(options(api_host=fake.url), COMMAND, ENV, 4)
    assert fake.gets == 3 and fake.deleted == [name]
    submitted = fake.jobs[name]
    assert submitted["spec"]["trainer"]["numNodes"] == 2
    assert fake.log_requests == []


def test_failed_job_raises_with_the_reason_and_the_failed_pods_log_tail():
    log = "Traceback ...\nValueError: rank 3 cannot read its shard"
    fake = FakeKubernetes(["created", "running", "failed"], log=log)
    with fake, pytest.raises(TrainJobFailedError) as error:
        run_trainjob(options(api_host=fake.url, keep_job=True), COMMAND, ENV, 4)
    message = str(error.value)
    assert "failed (TrainingFailed: jobset failed: node-1 exited 1)" in message
    assert "node-0-1-abcde (Failed)" in message and "rank 3 cannot read its shard" in message
    assert "container=node" in fake.log_requests[0] and "tailLines=50" in fake.log_requests[0]
    assert fake.deleted == []  # kept for inspection


def test_a_job_that_never_finishes_times_out_and_is_deleted():
    fake = FakeKubernetes(["created"] * 1000)
    with fake, pytest.raises(TrainJobFailedError, match="still Created after"):
        run_trainjob(options(api_host=fake.url, timeout_s=0.2), COMMAND, ENV, 4)
    assert len(fake.deleted) == 1


def test_the_task_and_the_node_agree_on_the_trainjob_variable():
    from yolo_mlops.kubeflow import task
    from yolo_mlops.pipelines.train import launch

    assert task.TRAINJOB_ENV == launch.TRAINJOB_ENV
