"""Kedro hook that ends every ``kedro run`` with the summary block of
:mod:`yolo_mlops.tracking.summary` (pipeline, status, duration, MLflow run, metrics, checkpoints,
and the command that recovers an unfinished run).

It must be called after :class:`~yolo_mlops.hooks.tracking.MlflowTrackingHook`, so that it finds
the MLflow run started and logs once the run has ended: see the order in
:mod:`yolo_mlops.hooks`. A run stopped by a signal (:data:`INTERRUPTS`) ends ``KILLED``; the
recovery command resumes it only when its ``save_dir`` holds a resumable ``last.pt``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from yolo_mlops.tracking import reports, summary, ui
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.yolo.train.interrupt import TrainingInterrupted
from yolo_mlops.yolo.train.run_guard import unfinished_run

logger = logging.getLogger(__name__)

CHECKPOINTS = ("model_checkpoint", "last_checkpoint")
#: Errors that mean "stopped on request", not "failed": the run ends KILLED.
INTERRUPTS: tuple[type[BaseException], ...] = (TrainingInterrupted, KeyboardInterrupt)


def dotted(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (how ``--params`` writes them)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(dotted(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def resumable(project_path: Path, params: Mapping[str, Any]) -> bool:
    """True when ``training.save_dir`` holds a ``last.pt`` of an unfinished run."""
    save_dir = Path(str((params.get("training") or {}).get("save_dir") or ""))
    if not str(save_dir) or str(save_dir) == ".":
        save_dir = Path(summary.RESUME_STATE).parent
    last = save_dir if save_dir.is_absolute() else project_path / save_dir
    return unfinished_run(last / "last.pt") is not None


class RunSummaryHook:
    """Collects what a pipeline run produced and logs the summary block when it ends."""

    def __init__(self) -> None:
        self._summary: summary.RunSummary | None = None
        self._started = 0.0
        self._catalog: Any = None
        self._project_path = Path.cwd()
        self._params: Mapping[str, Any] = {}
        self.logged = False  # this session's block is logged

    @property
    def pending(self) -> bool:
        """A pipeline run started and its block is not logged yet."""
        return self._summary is not None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = dict(context.params)
        self.logged = False

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._started = time.monotonic()
        self._catalog = catalog
        self._project_path = Path(run_params.get("project_path") or Path.cwd())
        names = run_params.get("pipeline_names") or ["__default__"]
        self._summary = summary.RunSummary(
            pipeline="+".join(names),
            env=str(run_params.get("env") or "local"),
            params=dotted(run_params.get("runtime_params") or {}),
        )
        run = tracking_run.pipeline_run()
        if run is None:
            return
        self._summary.run_id = run.run_id
        if run.broken:  # its server is gone already: the id is what the block can name
            return
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
        status = "KILLED" if isinstance(error, INTERRUPTS) else "FAILED"
        self._log(status, f"{type(error).__name__}: {error}")

    def _log(self, status: str, error: str | None) -> None:
        if self._summary is None:
            return
        self._summary.status, self._summary.error = status, error
        self._summary.seconds = time.monotonic() - self._started
        if status != "FINISHED":
            try:
                self._summary.resume_state_exists = resumable(self._project_path, self._params)
            except Exception as problem:  # the summary never fails a run
                logger.debug("summary: could not read the resume state: %s", problem)
        logger.info("\n%s", summary.render(self._summary))
        self._summary, self._catalog, self.logged = None, None, True
