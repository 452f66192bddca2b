"""Multi-process training from the ``train_model`` node: plan the processes, run ``torchrun``.

``training.device`` may list GPUs (``0,1,2,3`` or ``cuda:0,1``, as Ultralytics writes it) and
``training.nproc`` asks for N processes on one device type (CPU processes talk gloo). When more
than one process is asked for, the node does not train in its own process: it writes the
parameters each worker trains with next to the checkpoints and runs

    python -m torch.distributed.run <rendezvous> -m yolo_mlops.pipelines.train.worker \\
        --cache <image cache> --params P --augment P    # P = <save_dir>/launch_params.yml

(:func:`worker_command`; :mod:`.torchrun` runs it and reports a failing rank). Locally the
rendezvous is one node on a free loopback port; a Kubeflow ``TrainJob`` (see
:mod:`yolo_mlops.kubeflow.trainjob`) runs the same worker command in every pod, with the
rendezvous taken from the ``PET_*`` variables the Trainer runtime sets. The workers inherit
``MLFLOW_RUN_ID``: rank 0 logs the per-epoch metrics into the pipeline's run. After the workers
exit, the node reads ``best.pt``/``last.pt`` from ``save_dir`` and returns what single-process
training returns.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from yolo_mlops.pipelines.params import params_to_dict
from yolo_mlops.pipelines.train.torchrun import DistributedTrainingError, run_torchrun
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.train.loader_workers import available_cores
from yolo_mlops.yolo.train.trainer import TrainConfig, TrainResult

logger = logging.getLogger(__name__)

WORKER_MODULE = "yolo_mlops.pipelines.train.worker"
#: JSON of :class:`yolo_mlops.kubeflow.trainjob.TrainJobOptions`, set by the Kubeflow train
#: task: the node submits a TrainJob instead of running torchrun here.
TRAINJOB_ENV = "YOLO_MLOPS_TRAINJOB"
PARAMS_FILE = "launch_params.yml"


@dataclass(frozen=True)
class LaunchPlan:
    """How many processes train and what device each worker is told.

    Attributes:
        processes: processes per node (1: train in the node's own process).
        device: ``training.device`` for the workers (``cpu``, ``cuda``, ``cuda:1``, ``auto``...).
        visible_devices: ``CUDA_VISIBLE_DEVICES`` for the workers (a GPU list), or ``None``.
        nodes: machines (Kubeflow TrainJob nodes); 1 locally.
    """

    processes: int
    device: str
    visible_devices: str | None = None
    nodes: int = 1

    @property
    def distributed(self) -> bool:
        """True when more than one process (or node) trains."""
        return self.processes * self.nodes > 1


def gpu_ids(device: str) -> list[int] | None:
    """GPU indices of a device list (``"0,1"``, ``"cuda:0,1"``, ``"2"``), else ``None``.

    Raises:
        ValueError: a malformed or repeated index (the message names ``training.device``).
    """
    text = str(device).strip().lower().replace(" ", "")
    body = text[len("cuda:") :] if text.startswith("cuda:") else text
    if not body or not (body[0].isdigit() or text.startswith("cuda:")):
        return None
    try:
        ids = [int(part) for part in body.split(",")]
    except ValueError:
        raise ValueError(
            f"training.device={device!r}: expected GPU indices such as 0,1,2,3 or cuda:0,1, "
            "or one of auto, cpu, cuda, cuda:N, mps"
        ) from None
    if len(set(ids)) != len(ids) or min(ids) < 0:
        raise ValueError(f"training.device={device!r}: GPU indices must be distinct and >= 0")
    return ids


def _gpu_list_plan(config: TrainConfig, ids: list[int], nodes: int) -> LaunchPlan:
    """One process per listed GPU, each seeing its own GPU as ``cuda``."""
    if config.nproc not in (1, len(ids)):
        raise ValueError(
            f"training.nproc={config.nproc} but training.device={config.device!r} lists "
            f"{len(ids)} GPUs: one process per listed GPU; leave training.nproc at 1"
        )
    return LaunchPlan(len(ids), "cuda", ",".join(map(str, ids)), nodes)


def _one_gpu_plan(config: TrainConfig, gpu: int, nodes: int) -> LaunchPlan:
    if config.nproc > 1:
        raise ValueError(
            f"training.nproc={config.nproc} with the single GPU training.device="
            f"{config.device!r}: list the GPUs instead (training.device: 0,1)"
        )
    return LaunchPlan(1, f"cuda:{gpu}", None, nodes)


def _shared_device_plan(config: TrainConfig, nodes: int) -> LaunchPlan:
    """``training.nproc`` processes on one device type (cpu, cuda, auto)."""
    if config.nproc > 1 and config.device.startswith(("mps", "cuda:")):
        raise ValueError(
            f"training.nproc={config.nproc} needs a device that several processes can "
            f"share: set training.device to cpu, cuda or a GPU list (0,1), not "
            f"{config.device!r}"
        )
    return LaunchPlan(config.nproc, config.device, None, nodes)


def plan_launch(config: TrainConfig, nodes: int = 1) -> LaunchPlan:
    """The processes ``config`` asks for (see the module docstring).

    Raises:
        ValueError: contradictory settings; the message names the parameter and the fix.
    """
    ids = gpu_ids(config.device)
    if ids is not None and len(ids) > 1:
        plan = _gpu_list_plan(config, ids, nodes)
    elif ids is not None:
        plan = _one_gpu_plan(config, ids[0], nodes)
    else:
        plan = _shared_device_plan(config, nodes)
    total = plan.processes * plan.nodes
    if total > config.batch:
        raise ValueError(
            f"training.batch={config.batch} is the global batch and must give every one of "
            f"the {total} processes at least one image: raise training.batch"
        )
    return plan


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for the local rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_command(
    cache_dir: str | Path,
    params_file: str | Path,
    rendezvous: Sequence[str] = (),
    python: str = sys.executable,
    worker_module: str = WORKER_MODULE,
) -> list[str]:
    """``python -m torch.distributed.run <rendezvous> -m <worker> --cache C --params P
    --augment P`` (``P`` holds the ``training`` and ``preprocessing`` blocks).

    ``rendezvous``: torchrun options; empty in a TrainJob pod, where torchrun reads them from
    the ``PET_*`` environment variables of the Trainer runtime.
    """
    return [python, "-m", "torch.distributed.run", *rendezvous, "-m", worker_module,
            "--cache", str(cache_dir), "--params", str(params_file),
            "--augment", str(params_file)]  # fmt: skip


def local_rendezvous(processes: int, port: int) -> list[str]:
    """torchrun options for ``processes`` workers on this machine, rendezvous on ``port``."""
    return ["--nnodes=1", f"--nproc-per-node={processes}", "--node-rank=0",
            "--master-addr=127.0.0.1", f"--master-port={port}"]  # fmt: skip


def write_params(save_dir: Path, config: TrainConfig, augment: AugmentConfig) -> Path:
    """Write the workers' ``training`` and ``preprocessing.augment`` blocks to ``save_dir``.

    ``config`` is what each worker trains with (the plan's per-worker device, the local weights
    file); ``save_dir`` becomes absolute (pods and subprocesses may start in another directory).
    """
    training = params_to_dict(config) | {"save_dir": str(save_dir)}
    blocks = {"training": training, "preprocessing": {"augment": params_to_dict(augment)}}
    path = save_dir / PARAMS_FILE
    path.write_text(yaml.safe_dump(blocks, sort_keys=False))
    return path


def read_result(save_dir: Path, epochs: int) -> TrainResult:
    """The :class:`TrainResult` the workers left in ``save_dir`` (``last.pt``, ``best.pt``)."""
    last, best = save_dir / "last.pt", save_dir / "best.pt"
    if not last.is_file() or not best.is_file():
        raise DistributedTrainingError(f"the workers exited but left no checkpoints in {save_dir}")
    training = torch.load(last, map_location="cpu", weights_only=True)["training"]
    history = [dict(row) for row in training["history"]]
    return TrainResult(last, best, history, training["best_fitness"], len(history) < epochs)


def _worker_env(plan: LaunchPlan, config: TrainConfig) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # a node inside another torchrun must not join that group
    if plan.visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = plan.visible_devices
    # the affinity mask's cores, as the loader rule counts them (a cpuset may hold fewer)
    threads = config.threads or max(1, available_cores() // plan.processes)
    env.setdefault("OMP_NUM_THREADS", str(threads))
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # local rendezvous is on loopback
    return env


def _fresh_save_dir(config: TrainConfig) -> Path:
    """``save_dir``, absolute and without an older run's checkpoints (unless resuming)."""
    save_dir = Path(config.save_dir).resolve()
    save_dir.mkdir(parents=True, exist_ok=True)
    if not config.resume:
        for stale in ("last.pt", "best.pt"):
            (save_dir / stale).unlink(missing_ok=True)  # never return an older run's weights
    return save_dir


def _submit_trainjob(
    options_json: str, cache_dir: Path, params_file: Path, plan: LaunchPlan
) -> None:
    """Run the workers as a Kubeflow TrainJob (``$YOLO_MLOPS_TRAINJOB``) and wait for it."""
    from yolo_mlops.kubeflow.trainjob import TrainJobOptions, run_trainjob

    options = TrainJobOptions(**json.loads(options_json))
    command = worker_command(cache_dir, params_file, python="python", worker_module=WORKER_MODULE)
    run_trainjob(options, command, job_env_from(os.environ), plan.processes)


def train_distributed(
    config: TrainConfig, augment: AugmentConfig, cache_dir: str | Path | None, plan: LaunchPlan
) -> TrainResult:
    """Train with ``plan.processes`` torchrun workers here, or submit a Kubeflow TrainJob when
    ``$YOLO_MLOPS_TRAINJOB`` is set; return the result read from ``save_dir``.

    ``config`` is what each worker trains with (see :func:`write_params`).

    Raises:
        ValueError: the image cache has no folder (an in-memory cache cannot be shared).
        DistributedTrainingError: see :func:`run_torchrun`.
    """
    if cache_dir is None:
        raise ValueError("multi-process training needs an image cache on disk (image_cache.path)")
    save_dir = _fresh_save_dir(config)
    params_file = write_params(save_dir, config, augment)
    cache_dir = Path(cache_dir).resolve()
    trainjob = os.environ.get(TRAINJOB_ENV)
    if trainjob:
        _submit_trainjob(trainjob, cache_dir, params_file, plan)
    else:
        rendezvous = local_rendezvous(plan.processes, free_port())
        command = worker_command(cache_dir, params_file, rendezvous, worker_module=WORKER_MODULE)
        run_torchrun(command, _worker_env(plan, config))
    return read_result(save_dir, config.epochs)


def requested_nodes(environ: Mapping[str, str] = os.environ) -> int:
    """Nodes of the Kubeflow TrainJob the train task asks for (``$YOLO_MLOPS_TRAINJOB``), else 1."""
    text = environ.get(TRAINJOB_ENV)
    return int(json.loads(text).get("nodes", 1)) if text else 1


def job_env_from(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a TrainJob's pods need from this process: the MLflow run to join."""
    names = ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME",
             "KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK")  # fmt: skip
    return {name: environ[name] for name in names if environ.get(name)}
