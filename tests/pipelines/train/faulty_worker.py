"""A torchrun worker that fails on rank 1, for the launcher tests.

``$FAULT`` picks the failure: ``raise`` (rank 1 raises ``ValueError``) or ``kill`` (rank 1
dies of SIGKILL). Rank 0 waits for rank 1 in a barrier, as a rank waiting on a collective would.
It runs the pipeline's real worker entry (:func:`worker.main`) with the training replaced.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys

import torch.distributed as dist

from yolo_mlops.pipelines.train import ddp_worker as train_ddp
from yolo_mlops.pipelines.train import worker


def failing_training(argv=None, callbacks=()) -> int:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    if dist.get_rank() == 1:
        if os.environ.get("FAULT") == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise ValueError("rank 1 cannot read its shard: disk quota exceeded")
    dist.barrier()
    return 0


if __name__ == "__main__":
    train_ddp.main = failing_training
    sys.exit(worker.main(sys.argv[1:]))
