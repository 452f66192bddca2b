"""How many loader processes a training run may start without slowing its own step.

On a GPU the step runs on the accelerator and loader processes use otherwise idle cores. Each
training process gets up to its share of the cores, as in Ultralytics' data loader:

    workers = min(requested, max(1, cores // processes))

At 640 one worker builds about 180 mosaic samples/s on one of this project's CPU cores
(``benchmarks/dataloader.py``), so a fast GPU needs several.

On a CPU the step itself uses ``torch.get_num_threads()`` intra-op threads per training process,
and those threads wait for each other at the end of every operator: a loader process that takes
a core from one of them stalls the whole step (design §12). So on a CPU, loader processes only
get the cores the training processes leave free:

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
    if requested == 0:
        return 0
    cores = cores or available_cores()
    if device_type != "cpu":
        workers = min(requested, max(1, cores // processes))
        why = f"{processes} training process(es) share {cores} cores"
    else:
        workers = min(requested, max(0, cores - threads * processes))
        why = (
            f"the step's {threads} thread(s) x {processes} process(es) use "
            f"{threads * processes} of the {cores} cores and more processes would slow it"
        )
    if workers < requested:
        LOGGER.info(
            "training on %s: %d loader worker(s) instead of %d, because %s",
            device_type, workers, requested, why,
        )  # fmt: skip
    return workers
