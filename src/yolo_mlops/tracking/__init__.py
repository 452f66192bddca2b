"""The MLflow tracking layer: the only package that imports mlflow.

Public API used by nodes:

- :func:`log_epoch` ``(metrics, step)`` — per-epoch metrics with ``step=epoch`` (trainer).
- :func:`log_metrics` ``(metrics, step=None)`` — any numeric values.
- :func:`current_run_id` — the run this process logs into (``None`` when untracked).

All of them are no-ops when no run is active, so library code can call them unconditionally.

MLflow 3 sends usage telemetry unless told not to; this package is the project's way into mlflow,
so it turns that off before mlflow is imported (``MLFLOW_DISABLE_TELEMETRY=false`` opts back in).
"""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from yolo_mlops.tracking.config import TrackingParams
from yolo_mlops.tracking.run import (
    TrackingUnavailableError,
    current_run_id,
    log_epoch,
    log_metrics,
)

__all__ = [
    "TrackingParams",
    "TrackingUnavailableError",
    "current_run_id",
    "log_epoch",
    "log_metrics",
]
