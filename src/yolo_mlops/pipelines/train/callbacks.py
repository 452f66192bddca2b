"""What the trainer calls after every epoch in the ``train_model`` node: MLflow curves and ETA."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from yolo_mlops.yolo.train.trainer import EpochCallback

logger = logging.getLogger(__name__)


def tracking_callback() -> EpochCallback | None:
    """``on_epoch_end`` that logs the history row to MLflow via ``yolo_mlops.tracking``.

    Returns None (no per-epoch logging) when the tracking layer is not installed.
    """
    try:
        from yolo_mlops.tracking import log_epoch
    except ImportError:  # tracking layer absent: train without live curves
        logger.info("yolo_mlops.tracking not available; per-epoch metrics are not logged")
        return None

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        log_epoch({k: float(v) for k, v in row.items() if k != "epoch"}, step=epoch)

    return on_epoch_end


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def eta_callback(epochs: int) -> EpochCallback:
    """``on_epoch_end`` that logs the time left (mean epoch time so far × epochs left).

    With progress bars off (CI, ``dvc repro``) this line and the trainer's own epoch line are
    the only sign of life, so each one says when the run will end.
    """
    seconds: list[float] = []

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        seconds.append(float(row.get("time/epoch", 0.0)))
        mean = sum(seconds) / len(seconds)
        left = max(epochs - epoch, 0)
        logger.info(
            "epoch %d/%d done: %.1f s/epoch, ETA %s", epoch, epochs, mean, _duration(mean * left)
        )

    return on_epoch_end


def epoch_callbacks(epochs: int, extra: Sequence[EpochCallback] = ()) -> list[EpochCallback]:
    """``extra``, then the ETA line, then the MLflow logging (when the tracking layer exists)."""
    tracker = tracking_callback()
    return [*extra, eta_callback(epochs), *([tracker] if tracker is not None else [])]
