"""Kedro hook that ends every ``kedro run`` with the summary block of
:mod:`yolo_mlops.tracking.summary` (pipeline, status, duration, MLflow run, metrics, checkpoints).

It must be called after :class:`~yolo_mlops.hooks.tracking.MlflowTrackingHook`, so that it finds
the MLflow run started and logs once the run has ended: see the order in
:mod:`yolo_mlops.hooks`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from yolo_mlops.tracking import reports, summary, ui
from yolo_mlops.tracking import run as tracking_run

logger = logging.getLogger(__name__)

CHECKPOINTS = ("model_checkpoint", "last_checkpoint")


class RunSummaryHook:
    """Collects what a pipeline run produced and logs the summary block when it ends."""

    def __init__(self) -> None:
        self._summary: summary.RunSummary | None = None
        self._started = 0.0
        self._catalog: Any = None
        self._project_path = Path.cwd()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._started = time.monotonic()
        self._catalog = catalog
        self._project_path = Path(run_params.get("project_path") or Path.cwd())
        names = run_params.get("pipeline_names") or ["__default__"]
        self._summary = summary.RunSummary(
            pipeline="+".join(names), env=str(run_params.get("env") or "local")
        )
        run = tracking_run.current()
        if run is None:
            return
        self._summary.run_id = run.run_id
        try:
            info = run.client.get_run(run.run_id).info
        except Exception as error:  # the summary never fails a run
            logger.debug("summary: could not read run %s: %s", run.run_id, error)
            return
        self._summary.run_name = info.run_name
        self._summary.run_url = ui.run_url(run.uri, info.experiment_id, run.run_id)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        if self._summary is None:
            return
        if dataset_name in CHECKPOINTS:
            path = reports.dataset_filepath(self._catalog, dataset_name)
            self._summary.checkpoints.append(str(path) if path else dataset_name)
        elif dataset_name == "metrics" and isinstance(data, dict):
            self._summary.metrics = data
        elif dataset_name == "registration" and isinstance(data, dict):
            self._summary.registration = data

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._log("FINISHED", None)

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any]) -> None:
        self._log("FAILED", f"{type(error).__name__}: {error}")

    def _log(self, status: str, error: str | None) -> None:
        if self._summary is None:
            return
        self._summary.status, self._summary.error = status, error
        self._summary.seconds = time.monotonic() - self._started
        self._summary.resume_state_exists = (self._project_path / summary.RESUME_STATE).is_file()
        logger.info("\n%s", summary.render(self._summary))
        self._summary, self._catalog = None, None
