"""The torchrun worker of the ``train_model`` node (local processes and TrainJob pods alike).

    python -m torch.distributed.run ... -m yolo_mlops.pipelines.train.worker \\
        --cache <image cache> --params <save_dir>/launch_params.yml

It is :mod:`yolo_mlops.pipelines.train.ddp_worker` plus the pipeline's edges: rank 0 logs every
epoch's metrics into the MLflow run named by ``$MLFLOW_RUN_ID`` (the node's run), and a rank that
fails logs one line the launcher picks up (``FAILURE_MARKER rank=<r> <Type>: <message>``), so the
node fails with that rank's own message.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from yolo_mlops.pipelines.train import ddp_worker
from yolo_mlops.pipelines.train.callbacks import tracking_callback
from yolo_mlops.pipelines.train.torchrun import FAILURE_MARKER

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Train this rank; on failure log the marker line and re-raise."""
    try:
        tracker = tracking_callback() if os.environ.get("RANK", "0") == "0" else None
        return ddp_worker.main(list(argv) if argv is not None else None,
                              callbacks=[tracker] if tracker else [])  # fmt: skip
    except Exception as error:
        rank = os.environ.get("RANK", "0")
        message = " | ".join(str(error).splitlines()) or "(no message)"
        logger.error("%s rank=%s %s: %s", FAILURE_MARKER, rank, type(error).__name__, message)
        raise


if __name__ == "__main__":
    sys.exit(main())
