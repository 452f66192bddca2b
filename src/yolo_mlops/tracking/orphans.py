"""Keep MLflow runs linked to the model they trained, and close the ones left RUNNING.

- :func:`checkpoint_meta`: the ``tracking`` entry the trainer writes into every checkpoint's
  ``config`` (run id and store), so a resume, an evaluation or a registration finds the run.
- :func:`close_stale`: the previous holder of a model folder left its run RUNNING (``kill -9``,
  or the server was gone when it ended): mark it KILLED (process killed) or FAILED (ended while
  tracking was lost), tagged with the run that found it.
- :func:`link_resume`: a resumed training run and the run it continues point at each other.
- :func:`training_run`: the run a checkpoint was trained in, when it lives in the same store.

None of these raise on a tracking failure: bookkeeping never stops a pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolo_mlops.tracking import run as tracking_run

logger = logging.getLogger(__name__)

RESUMED_FROM_TAG = "resumed_from_run_id"
RESUMED_BY_TAG = "resumed_by_run_id"
TRAINED_IN_TAG = "trained_in_run_id"


def checkpoint_meta() -> dict[str, Any]:
    """``{"tracking": {"run_id", "tracking_uri"}}`` of the pipeline's run, or ``{}`` untracked.

    A run that lost its server before training still names itself: the recovery command
    registers the model into it (see :func:`training_run`).
    """
    run = tracking_run.pipeline_run()
    if run is None:
        return {}
    return {"tracking": {"run_id": run.run_id, "tracking_uri": run.uri}}


def recorded_run_id(meta: Mapping[str, Any] | None) -> str | None:
    """The run id in a checkpoint ``config`` (or a lock record's ``owner``), if any."""
    tracking = (meta or {}).get("tracking") or {}
    return str(tracking["run_id"]) if tracking.get("run_id") else None


#: How a holder that stopped on one of these ended: stopped on request, not failed.
_STOPPED = ("KeyboardInterrupt", "TrainingInterrupted", "SystemExit")


def stale_reason(previous: Mapping[str, Any]) -> tuple[str, str]:
    """``(status, reason)`` for the run of a model folder's previous holder (its lock record).

    Not released: its process died without running its clean-up (``kill -9``, out of memory).
    Released with an ``outcome``: the exception it stopped on, or ``finished`` when it trained to
    the end but its run could not be ended (the tracking server was unreachable then).
    """
    if not previous.get("released"):
        return "KILLED", "its process was killed (SIGKILL, out of memory...) before the run ended"
    outcome = str(previous.get("outcome") or "")
    if outcome == "finished":
        return "FAILED", "its process ended while the tracking server was unreachable"
    if not outcome:
        return "FAILED", "its process ended without ending the run"
    status = "KILLED" if outcome.startswith(_STOPPED) else "FAILED"
    return status, f"its process stopped on {outcome} without ending the run"


def close_stale(previous: Mapping[str, Any] | None, model_dir: Path) -> str | None:
    """Mark the run of the previous holder of ``model_dir`` ended, when it is still RUNNING.

    Returns:
        The status set (``KILLED``/``FAILED``), or ``None`` when nothing was stale.
    """
    run = tracking_run.current()
    stale_id = recorded_run_id((previous or {}).get("owner"))
    if run is None or stale_id is None or stale_id == run.run_id:
        return None
    status, why = stale_reason(previous or {})

    def call(client) -> str | None:
        if client.get_run(stale_id).info.status != "RUNNING":
            return None
        client.set_tag(stale_id, "stale.reason", f"{why}; found by run {run.run_id}")
        client.set_tag(stale_id, "stale.model_dir", str(model_dir))
        client.set_terminated(stale_id, status)
        logger.warning("MLflow: run %s for %s was left RUNNING (%s); marked %s",
                       stale_id, model_dir, why, status)  # fmt: skip
        return status

    return tracking_run._safely(run, f"close stale run {stale_id}", call)


def link_resume(resumed_checkpoint: Mapping[str, Any] | None) -> str | None:
    """Tag the current run and the run that wrote ``resumed_checkpoint`` with each other."""
    run = tracking_run.current()
    previous_id = recorded_run_id((resumed_checkpoint or {}).get("config"))
    if run is None or previous_id is None or previous_id == run.run_id:
        return None

    def call(client) -> str:
        client.set_tag(run.run_id, RESUMED_FROM_TAG, previous_id)
        client.set_tag(previous_id, RESUMED_BY_TAG, run.run_id)
        logger.info("MLflow: run %s resumes the training of run %s", run.run_id, previous_id)
        return previous_id

    return tracking_run._safely(run, "link resumed runs", call)


def training_run(checkpoint: Mapping[str, Any], run: tracking_run.TrackedRun):
    """The run that trained ``checkpoint`` when it exists in ``run``'s store, else ``run``."""
    trained_id = recorded_run_id(checkpoint.get("config"))
    if trained_id is None or trained_id == run.run_id:
        return run

    def call(client) -> str:
        client.get_run(trained_id)  # must exist in this store
        client.set_tag(run.run_id, TRAINED_IN_TAG, trained_id)
        return trained_id

    if tracking_run._safely(run, f"find training run {trained_id}", call) is None:
        logger.warning("MLflow: the training run %s is not in %s; registering into run %s",
                       trained_id, run.uri, run.run_id)  # fmt: skip
        return run
    logger.info("MLflow: registering into run %s, which trained the model", trained_id)
    return tracking_run.TrackedRun(run.uri, trained_id, on_unreachable=run.on_unreachable)
