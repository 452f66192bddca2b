"""Keep every version's card truthful after the aliases move on, and close a recovered run.

A version's card (its description, :mod:`.model_card`) says where the aliases pointed when it
was written, under the promotion lock (:mod:`.promotion_lock`), so it is true then. A later
registration that takes an alias away from a version says so on that version:

- the tag ``moved.<alias>`` (``v5 by run <id>``: the version that holds it now),
- a line appended to its description: ``Later: @champion moved to v5 (run <id>).``

so the registry's version list and the card both show that the card's "Aliases now" line is
history. :func:`complete_lost_run` ends the training run that lost its tracking server once the
recovery command (``kedro run --pipelines register``) has registered its model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from yolo_mlops.tracking import run as tracking_run

logger = logging.getLogger(__name__)

MOVED_TAG = "moved.{alias}"
COMPLETED_BY_TAG = "tracking.completed_by"


def holders(client: MlflowClient, name: str, aliases: Sequence[str]) -> dict[str, str]:
    """``{alias: version}`` for the aliases of ``name`` that point somewhere now."""
    found = {}
    for alias in aliases:
        try:
            found[alias] = str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            continue
    return found


def note_moves(
    client: MlflowClient, name: str, before: Mapping[str, str], version: str, run_id: str
) -> list[str]:
    """Mark the versions whose alias moved to ``version``; the aliases that moved.

    ``before`` is :func:`holders` read before the move; an alias that now points elsewhere
    than before is noted on its previous holder (best effort: a failure is logged).
    """
    now = holders(client, name, list(before))
    moved = [alias for alias, old in before.items() if now.get(alias) not in (None, old)]
    for alias in moved:
        old, new = before[alias], now[alias]
        try:
            client.set_model_version_tag(
                name, old, MOVED_TAG.format(alias=alias), f"v{new} by run {run_id}"
            )
            previous = client.get_model_version(name, old).description or ""
            line = f"Later: @{alias} moved to v{new} (run {run_id})."
            client.update_model_version(name, old, f"{previous.rstrip()}\n\n{line}\n")
        except MlflowException as error:
            logger.warning("MLflow: could not note on %s v%s that @%s moved: %s",
                           name, old, alias, error)  # fmt: skip
    return moved


def complete_lost_run(client: MlflowClient, trained_run_id: str) -> bool:
    """End the training run registered into by another run, when it was left RUNNING.

    The training pipeline lost its server mid-run and exited (``TrackingLostError``) without
    ending its run; the recovery command registered its model from a new run. The training run
    is then complete: it is marked FINISHED with the tag ``tracking.completed_by``. A run
    registered into from its own pipeline (or a Kubeflow task sharing it) is left alone.

    Returns:
        True when the run was ended here.
    """
    current = tracking_run.current()
    if current is None or current.run_id == trained_run_id:
        return False
    try:
        if client.get_run(trained_run_id).info.status != "RUNNING":
            return False
        client.set_tag(trained_run_id, COMPLETED_BY_TAG, current.run_id)
        client.set_terminated(trained_run_id, "FINISHED")
    except MlflowException as error:
        logger.warning("MLflow: could not end the lost run %s: %s", trained_run_id, error)
        return False
    logger.info("MLflow: run %s (tracking lost mid-run) completed by run %s",
                trained_run_id, current.run_id)  # fmt: skip
    return True
