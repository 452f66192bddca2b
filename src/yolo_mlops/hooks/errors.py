"""What the project's ``kedro run`` (``yolo_mlops.cli``) treats as errors a user can fix, and
how it ends a run that stopped outside the pipeline's own error path.

Kedro calls ``on_pipeline_error`` only for an ``Exception`` raised by a node. A run stopped by a
second Ctrl-C (``KeyboardInterrupt``) or failing in a run-start hook (parameters, weights) would
leave its MLflow run RUNNING and print no summary block: :func:`finish_stopped_run` ends it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from yolo_mlops.ingestion.archive import ArchiveError
from yolo_mlops.ingestion.dataset_yaml import DatasetYamlError
from yolo_mlops.ingestion.download import DownloadError
from yolo_mlops.ingestion.ingest import IngestError
from yolo_mlops.ingestion.validation import LabelValidationError
from yolo_mlops.pipelines.params import ParameterError
from yolo_mlops.tracking import summary
from yolo_mlops.tracking.recovery import TrackingLostError
from yolo_mlops.tracking.run import TrackingUnavailableError
from yolo_mlops.yolo.data.image_cache import ImageCacheError
from yolo_mlops.yolo.io.checkpoint import CheckpointError, CheckpointWriteError
from yolo_mlops.yolo.train.engine import NonFiniteLossError
from yolo_mlops.yolo.train.interrupt import TrainingInterrupted
from yolo_mlops.yolo.train.run_guard import RunSettingsError, SaveDirBusyError

logger = logging.getLogger(__name__)

#: Errors whose message names the parameter or file to change (no traceback on the console).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ParameterError, RunSettingsError, CheckpointError, CheckpointWriteError, ArchiveError,
    DatasetYamlError, DownloadError, IngestError, LabelValidationError, ImageCacheError,
    NonFiniteLossError, SaveDirBusyError, TrackingUnavailableError, TrackingLostError,
    TrainingInterrupted, KeyboardInterrupt,
)  # fmt: skip


def finish_stopped_run(error: BaseException, options: Mapping[str, Any]) -> None:
    """End the MLflow run and log the summary block, unless the pipeline's hooks already did.

    ``options``: the ``kedro run`` options (``pipelines``, ``env``, ``params``).
    """
    from yolo_mlops.hooks import HOOKS
    from yolo_mlops.hooks.summary import RunSummaryHook
    from yolo_mlops.hooks.tracking import MlflowTrackingHook

    summaries = [hook for hook in HOOKS if isinstance(hook, RunSummaryHook)]
    for hook in HOOKS:
        if isinstance(hook, MlflowTrackingHook):
            hook.end_stopped_run(error)
    for hook in summaries:
        if hook.pending:
            hook.on_pipeline_error(error, {})  # type: ignore[arg-type]
    if any(hook.logged for hook in summaries):
        return
    names = list(options.get("pipelines") or []) or [options.get("pipeline") or "__default__"]
    from yolo_mlops.hooks.summary import INTERRUPTS, dotted

    block = summary.RunSummary(
        pipeline="+".join(names),
        env=str(options.get("env") or "local"),
        status="KILLED" if isinstance(error, INTERRUPTS) else "FAILED",
        error=f"{type(error).__name__}: {error}",
        params=dotted(options.get("params") or {}),
        untracked="the run stopped before its MLflow run started",
    )
    logger.info("\n%s", summary.render(block))
