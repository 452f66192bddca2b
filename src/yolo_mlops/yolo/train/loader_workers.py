"""How many loader processes a training run may start without slowing its own step.

On a GPU the step runs on the accelerator and loader processes use otherwise idle cores, so the
configured count is kept. On a CPU the step itself uses ``torch.get_num_threads()`` intra-op
threads per training process, and those threads wait for each other at the end of every
operator: a loader process that takes a core from one of them stalls the whole step (design
§12). So on a CPU, loader processes only get the cores the training processes leave free:

    workers = min(requested, max(0, cores - threads * processes))

With 0 workers the batch is built in the training process between steps, which costs its
loading time (68 ms for a batch of 16 at imgsz 320 on one core) but never an oversubscribed
step. Samples do not depend on the worker count (design §4), so neither do the results.
"""

from __future__ import annotations

import logging
import os

LOGGER = logging.getLogger(__name__)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def loader_workers(
    requested: int, *, device_type: str, threads: int, processes: int = 1, cores: int = 0
) -> int:
    """Loader processes for a training process; see the module docstring for the rule.

    Args:
        requested: the configured worker count (``training.workers``), >= 0.
        device_type: ``"cpu"``, ``"cuda"``, ``"mps"``... of the training step.
        threads: intra-op threads of each training process (``torch.get_num_threads()``).
        processes: training processes sharing this machine (the DDP world size on one host).
        cores: cores available (0 = :func:`available_cores`).
    """
    if requested < 0 or threads < 1 or processes < 1:
        raise ValueError(
            f"need workers >= 0, threads >= 1 and processes >= 1, "
            f"got {requested}, {threads}, {processes}"
        )
    if device_type != "cpu" or requested == 0:
        return requested
    cores = cores or available_cores()
    free = max(0, cores - threads * processes)
    workers = min(requested, free)
    if workers < requested:
        LOGGER.info(
            "training on CPU: %d loader worker(s) instead of %d, because the step's %d thread(s) "
            "x %d process(es) use %d of the %d cores and more processes would slow it",
            workers, requested, threads, processes, threads * processes, cores,
        )  # fmt: skip
    return workers
