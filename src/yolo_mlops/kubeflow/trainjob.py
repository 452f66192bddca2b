"""Multi-node training on Kubeflow Trainer: the ``TrainJob`` the train task submits and waits for.

With ``kedro kubeflow compile --train-nodes M`` (M > 1) the compiled ``train`` task passes
``--trainjob <TrainJobOptions JSON>`` to :mod:`yolo_mlops.kubeflow.task`, which hands it to the
``train_model`` node as ``$YOLO_MLOPS_TRAINJOB``. The node writes the resolved parameters to the
shared (ReadWriteMany) data volume and calls :func:`run_trainjob` with the same worker command
the local multi-process path runs (``launch.worker_command``). The job:

- references a Trainer runtime (``ClusterTrainingRuntime`` ``torch-distributed`` by default),
  which starts ``numNodes`` pods and sets torchrun's ``PET_*`` rendezvous variables;
- runs the project image with that command, ``numProcPerNode`` processes per pod, the requested
  resources, ``MLFLOW_RUN_ID``/``MLFLOW_TRACKING_URI`` (rank 0 logs into the pipeline's run);
- mounts the data PVC at the same path as the task (checkpoints land where the node reads them).

The manifest is built as a dict and validated by a round trip through the SDK's own model class
(``kubeflow_trainer_api.models.TrainerV1alpha1TrainJob``, installed by the ``kubeflow``
package): a key the model does not know would be dropped, and that is an error here.
Submission, polling, logs and deletion use the ``kubernetes`` client directly: the SDK's
``TrainerClient.train`` resolves the runtime first and its ``wait_for_job_status`` raises a bare
"TrainJob is Failed"; the task must also report the failing pod's log tail.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
KIND = "TrainJob"
NODE_CONTAINER = "node"  # the trainer container and replicated job of the torch runtimes
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
DATA_VOLUME = "data"
SHM_VOLUME = "dshm"
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class TrainJobFailedError(RuntimeError):
    """The TrainJob failed or did not finish in time (the message has the pod's log tail)."""


@dataclass(frozen=True)
class TrainJobOptions:
    """What the compiled train task asks of the TrainJob (JSON in ``$YOLO_MLOPS_TRAINJOB``).

    Attributes:
        nodes: pods (machines) of the job; numProcPerNode comes from the training parameters.
        image: the project image the pods run.
        runtime: name of the ``ClusterTrainingRuntime`` (``torch-distributed`` ships with
            Kubeflow Trainer).
        namespace: where to create the job; "" = the task pod's own namespace.
        pvc: ReadWriteMany PVC with the project data, mounted at ``data_mount`` in every pod.
        gpu, gpu_type, cpu, memory: resources per node (limits = requests).
        shm_size: memory-backed ``/dev/shm`` per pod (torch data-loader workers, NCCL).
        keep_job: leave the TrainJob (and its pods' logs) after it ends; default: delete it.
        timeout_s: give up waiting after this long (the job is then deleted unless kept).
        poll_s: seconds between status reads.
        api_host: Kubernetes API URL; "" = in-cluster service account, else kubeconfig.
    """

    nodes: int
    image: str
    runtime: str = "torch-distributed"
    namespace: str = ""
    pvc: str = "yolo-mlops-data"
    data_mount: str = "/app/data"
    gpu: int = 0
    gpu_type: str = "nvidia.com/gpu"
    cpu: str | None = None
    memory: str | None = None
    shm_size: str = "2Gi"
    keep_job: bool = False
    timeout_s: float = 7 * 24 * 3600.0
    poll_s: float = 15.0
    api_host: str = ""

    def __post_init__(self) -> None:
        if self.nodes < 2:
            raise ValueError(f"--train-nodes={self.nodes}: a TrainJob is for 2 or more nodes")
        if not self.pvc:
            raise ValueError("--train-nodes needs --pvc: the pods share data through that volume")


def _resources(options: TrainJobOptions) -> dict[str, dict[str, str]]:
    amounts = {options.gpu_type: str(options.gpu)} if options.gpu else {}
    amounts |= {"cpu": options.cpu} if options.cpu else {}
    amounts |= {"memory": options.memory} if options.memory else {}
    return {"limits": dict(amounts), "requests": dict(amounts)} if amounts else {}


def build_manifest(
    options: TrainJobOptions,
    name: str,
    command: Sequence[str],
    env: Mapping[str, str],
    nproc_per_node: int,
) -> dict[str, Any]:
    """The TrainJob manifest (a dict, as the API takes it), checked with the SDK's model.

    Raises:
        ValueError: the SDK's model rejects or drops part of the manifest.
    """
    trainer: dict[str, Any] = {
        "image": options.image,
        "command": list(command),
        "numNodes": options.nodes,
        "numProcPerNode": nproc_per_node,
        "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
    }
    if resources := _resources(options):
        trainer["resourcesPerNode"] = resources
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "yolo-mlops"}},
        "spec": {
            "runtimeRef": {
                "apiGroup": GROUP,
                "kind": "ClusterTrainingRuntime",
                "name": options.runtime,
            },
            "trainer": trainer,
            "runtimePatches": [{"manager": "yolo-mlops", "trainingRuntimeSpec": _volumes(options)}],
        },
    }
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    checked = TrainerV1alpha1TrainJob.from_dict(manifest)
    if checked is None or checked.to_dict() != manifest:
        raise ValueError(f"the Kubeflow Trainer SDK does not accept this TrainJob: {manifest}")
    return manifest


def _volumes(options: TrainJobOptions) -> dict[str, Any]:
    """The runtime patch that mounts the data PVC and a memory-backed ``/dev/shm`` in the
    node container of every pod."""
    shm = {"medium": "Memory"} | ({"sizeLimit": options.shm_size} if options.shm_size else {})
    pod = {
        "volumes": [
            {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": options.pvc}},
            {"name": SHM_VOLUME, "emptyDir": shm},
        ],
        "containers": [
            {
                "name": NODE_CONTAINER,
                "volumeMounts": [
                    {"name": DATA_VOLUME, "mountPath": options.data_mount},
                    {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
                ],
            }
        ],
    }
    job = {"name": NODE_CONTAINER, "template": {"spec": {"template": {"spec": pod}}}}
    return {"template": {"spec": {"replicatedJobs": [job]}}}


def _namespace(options: TrainJobOptions) -> str:
    if options.namespace:
        return options.namespace
    return _NAMESPACE_FILE.read_text().strip() if _NAMESPACE_FILE.is_file() else "default"


def _api_client(options: TrainJobOptions) -> Any:
    from kubernetes import client, config

    if options.api_host:
        configuration = client.Configuration()
        configuration.host = options.api_host
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def job_state(job: Mapping[str, Any], pods: Sequence[Any]) -> str:
    """``Complete`` / ``Failed`` (a true terminal condition), else ``Running`` once a node pod
    runs, else ``Created``."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return condition["type"]
    phases = {pod.status.phase for pod in pods}
    return "Running" if phases & {"Running", "Succeeded", "Failed"} else "Created"


def _failure_reason(job: Mapping[str, Any]) -> str:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed":
            return f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": ")
    return "no Complete condition"


def _log_tail(core: Any, namespace: str, pods: Sequence[Any], lines: int = 50) -> str:
    """The last ``lines`` of the first failed pod's trainer container (else the first pod's)."""
    if not pods:
        return "(no pods found)"
    failed = [pod for pod in pods if pod.status.phase == "Failed"]
    pod = (failed or list(pods))[0]
    try:
        text = core.read_namespaced_pod_log(
            pod.metadata.name, namespace, container=NODE_CONTAINER, tail_lines=lines
        )
    except Exception as error:  # the log is a courtesy: never hide the job's failure
        text = f"(log unavailable: {type(error).__name__}: {error})"
    return f"pod {pod.metadata.name} ({pod.status.phase}), last {lines} log lines:\n{text}"


def run_trainjob(
    options: TrainJobOptions,
    command: Sequence[str],
    env: Mapping[str, str],
    nproc_per_node: int,
) -> str:
    """Submit the TrainJob, wait for it, delete it unless ``keep_job``; return its name.

    Raises:
        TrainJobFailedError: the job failed (reason and the failing pod's log tail) or passed
            ``options.timeout_s``.
    """
    from kubernetes import client

    api = _api_client(options)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    namespace = _namespace(options)
    name = f"yolo-train-{uuid.uuid4().hex[:8]}"
    manifest = build_manifest(options, name, command, env, nproc_per_node)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    logger.info("TrainJob %s/%s created: %d nodes x %d processes, runtime %s, image %s",
                namespace, name, options.nodes, nproc_per_node, options.runtime,
                options.image)  # fmt: skip
    deadline = time.monotonic() + options.timeout_s
    state, failure = "", ""
    try:
        while True:
            job = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            pods = core.list_namespaced_pod(namespace, label_selector=f"{JOBSET_LABEL}={name}")
            current = job_state(job, pods.items)
            if current != state:
                logger.info("TrainJob %s/%s: %s", namespace, name, current)
                state = current
            if state == "Complete":
                return name
            if state == "Failed":
                failure = f"TrainJob {namespace}/{name} failed ({_failure_reason(job)})"
            elif time.monotonic() > deadline:
                failure = f"TrainJob {namespace}/{name} still {state} after {options.timeout_s} s"
            if failure:
                raise TrainJobFailedError(f"{failure}; {_log_tail(core, namespace, pods.items)}")
            time.sleep(options.poll_s)
    finally:
        if options.keep_job:
            logger.info("TrainJob %s/%s kept (--keep-trainjob)", namespace, name)
        else:
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            logger.info("TrainJob %s/%s deleted", namespace, name)
