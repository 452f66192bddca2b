"""Multi-process training from the ``train_model`` node: plan the processes, run ``torchrun``.

``training.device`` may list GPUs (``0,1,2,3`` or ``cuda:0,1``, as Ultralytics writes it) and
``training.nproc`` asks for N processes on one device type (CPU processes talk gloo). When more
than one process is asked for, the node does not train in its own process: it writes the
resolved parameters next to the checkpoints and runs

    python -m torch.distributed.run <rendezvous> -m yolo_mlops.pipelines.train.worker \\
        --cache <image cache> --params P --augment P    # P = <save_dir>/launch_params.yml

(:func:`worker_command`). Locally the rendezvous is one node on a free loopback port; a
Kubeflow ``TrainJob`` (see :mod:`yolo_mlops.kubeflow.trainjob`) runs the same worker command in
every pod, with the rendezvous taken from the ``PET_*`` variables the Trainer runtime sets. The
workers inherit ``MLFLOW_RUN_ID``: rank 0 logs the per-epoch metrics into the pipeline's run.
After the workers exit, the node reads ``best.pt``/``last.pt`` from ``save_dir`` and returns what
single-process training returns.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from yolo_mlops.yolo.train.loader_workers import available_cores
from yolo_mlops.yolo.train.trainer import TrainConfig, TrainResult

logger = logging.getLogger(__name__)

WORKER_MODULE = "yolo_mlops.pipelines.train.worker"
#: A worker that raises logs one line ``<marker> rank=<r> <Type>: <message>`` (see worker.py).
FAILURE_MARKER = "YOLO_MLOPS_RANK_FAILED"
#: JSON of :class:`yolo_mlops.kubeflow.trainjob.TrainJobOptions`, set by the Kubeflow train
#: task: the node submits a TrainJob instead of running torchrun here.
TRAINJOB_ENV = "YOLO_MLOPS_TRAINJOB"
PARAMS_FILE = "launch_params.yml"
_TAIL_LINES = 200


class DistributedTrainingError(RuntimeError):
    """The multi-process training failed (a rank raised, was killed, or timed out)."""


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


def plan_launch(config: TrainConfig, nodes: int = 1) -> LaunchPlan:
    """The processes ``config`` asks for (see the module docstring).

    Raises:
        ValueError: contradictory settings; the message names the parameter and the fix.
    """
    ids = gpu_ids(config.device)
    if ids is not None and len(ids) > 1:
        if config.nproc not in (1, len(ids)):
            raise ValueError(
                f"training.nproc={config.nproc} but training.device={config.device!r} lists "
                f"{len(ids)} GPUs: one process per listed GPU; leave training.nproc at 1"
            )
        plan = LaunchPlan(len(ids), "cuda", ",".join(map(str, ids)), nodes)
    elif ids is not None:
        if config.nproc > 1:
            raise ValueError(
                f"training.nproc={config.nproc} with the single GPU training.device="
                f"{config.device!r}: list the GPUs instead (training.device: 0,1)"
            )
        plan = LaunchPlan(1, f"cuda:{ids[0]}", None, nodes)
    else:
        if config.nproc > 1 and config.device.startswith(("mps", "cuda:")):
            raise ValueError(
                f"training.nproc={config.nproc} needs a device that several processes can "
                f"share: set training.device to cpu, cuda or a GPU list (0,1), not "
                f"{config.device!r}"
            )
        plan = LaunchPlan(config.nproc, config.device, None, nodes)
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


def write_params(
    save_dir: Path,
    parameters: Mapping[str, Any],
    preprocessing: Mapping[str, Any] | None,
    plan: LaunchPlan,
) -> Path:
    """Write the workers' ``training`` and ``preprocessing`` blocks to ``save_dir``.

    ``device`` becomes the plan's per-worker device and ``save_dir`` absolute (pods and
    subprocesses may start in another directory).
    """
    training = dict(parameters) | {"device": plan.device, "save_dir": str(save_dir)}
    blocks = {"training": training, "preprocessing": dict(preprocessing or {})}
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


def _failure_message(returncode: int, tail: Sequence[str], failures: Sequence[str]) -> str:
    """The failing rank's own message, else torchrun's account of how it died.

    torchrun names the first rank that failed ("Root Cause"); the other ranks usually fail
    after it with a connection error, so the root cause's own message wins, then its exit code
    or signal (a killed worker logs nothing), then the first rank message seen.
    """
    text = "\n".join(tail)
    root = text.rsplit("Root Cause", 1)[1] if "Root Cause" in text else ""
    rank = re.search(r"rank\s*:\s*(\d+)", root)
    by_rank = {m.group(1): line for line in failures if (m := re.match(r"rank=(\d+)", line))}
    if rank and rank.group(1) in by_rank:
        return by_rank[rank.group(1)]
    if rank:
        exitcode = re.search(r"exitcode\s*:\s*(-?\d+)", root)
        what = f"rank {rank.group(1)} exited with code {exitcode.group(1) if exitcode else '?'}"
        if signal_name := re.search(r"Signal \d+ \((\w+)\) received", root):
            what += f" ({signal_name.group(1)})"
        return what + (f"; then {failures[0]}" if failures else "")
    if failures:
        return failures[0]
    last = [line for line in tail if line.strip()][-15:]
    return f"torchrun exited with status {returncode}; last output:\n" + "\n".join(last)


def _stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate torchrun and its workers (their own process group), then kill."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_torchrun(
    command: Sequence[str], env: Mapping[str, str], timeout_s: float | None = None
) -> None:
    """Run ``command`` (torchrun), log its output line by line, raise if a rank fails.

    Args:
        command: the argv (see :func:`worker_command`).
        env: the environment of torchrun and its workers.
        timeout_s: wall-clock limit; torchrun and every worker are killed after it.

    Raises:
        DistributedTrainingError: a rank raised (its message), died (its exit code or signal)
            or the run passed ``timeout_s``.
    """
    logger.info("launching: %s", " ".join(command))
    process = subprocess.Popen(
        list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1, start_new_session=True,
    )  # fmt: skip
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    failures: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip()
            tail.append(line)
            if FAILURE_MARKER in line:
                failures.append(line.split(FAILURE_MARKER, 1)[1].strip())
            logger.info("[torchrun] %s", line)

    reader = threading.Thread(target=pump, name="torchrun-output", daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(process)
        reader.join(timeout=5)
        raise DistributedTrainingError(
            f"multi-process training passed its {timeout_s:.0f} s limit and was killed; "
            "last output:\n" + "\n".join(list(tail)[-15:])
        ) from None
    except BaseException:  # KeyboardInterrupt: do not leave workers behind
        _stop(process)
        raise
    reader.join(timeout=5)
    if process.returncode != 0:
        raise DistributedTrainingError(
            "multi-process training failed: "
            + _failure_message(process.returncode, list(tail), failures)
        )
    logger.info("torchrun finished in %.1f s", time.monotonic() - started)


def train_distributed(
    config: TrainConfig,
    parameters: Mapping[str, Any],
    preprocessing: Mapping[str, Any] | None,
    cache_dir: str | Path | None,
    plan: LaunchPlan,
    *,
    timeout_s: float | None = None,
    worker_module: str | None = None,
) -> TrainResult:
    """Train with ``plan.processes`` torchrun workers here, or submit a Kubeflow TrainJob when
    ``$YOLO_MLOPS_TRAINJOB`` is set; return the result read from ``save_dir``.

    Raises:
        ValueError: the image cache has no folder (an in-memory cache cannot be shared).
        DistributedTrainingError: see :func:`run_torchrun`.
    """
    if cache_dir is None:
        raise ValueError("multi-process training needs an image cache on disk (image_cache.path)")
    save_dir = Path(config.save_dir).resolve()
    save_dir.mkdir(parents=True, exist_ok=True)
    if not config.resume:
        for stale in ("last.pt", "best.pt"):
            (save_dir / stale).unlink(missing_ok=True)  # never return an older run's weights
    params_file = write_params(save_dir, parameters, preprocessing, plan)
    worker_module = worker_module or WORKER_MODULE
    cache_dir = Path(cache_dir).resolve()
    trainjob = os.environ.get(TRAINJOB_ENV)
    if trainjob:
        from yolo_mlops.kubeflow.trainjob import TrainJobOptions, run_trainjob

        options = TrainJobOptions(**json.loads(trainjob))
        command = worker_command(cache_dir, params_file, python="python",
                                 worker_module=worker_module)  # fmt: skip
        run_trainjob(options, command, job_env_from(os.environ), plan.processes)
    else:
        rendezvous = local_rendezvous(plan.processes, free_port())
        command = worker_command(cache_dir, params_file, rendezvous, worker_module=worker_module)
        run_torchrun(command, _worker_env(plan, config), timeout_s)
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
