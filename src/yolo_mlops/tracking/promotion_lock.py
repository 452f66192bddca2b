"""Serialise registrations and alias moves per registered model, across processes and machines.

Two pipelines that finish together both read "champion = v3", both decide, and the last alias
write wins even when it is the worse model. The gate is only correct when "read the champion,
decide, move the aliases" runs for one version at a time. The pipelines cannot reach the
tracking database (only the tracking server's REST API), and a file lock only serialises one
machine, so the lock is built from the one atomic operation the registry API offers:

- **acquire**: create the registered model ``<model>.promotion-lock``. The registry refuses a
  second model of the same name (``RESOURCE_ALREADY_EXISTS``; a unique key in the database, for
  the embedded sqlite store and PostgreSQL alike), so exactly one process holds it. The lock
  model's tags say who holds it (``holder``: host, pid, run id) and until when (``expires_at``,
  Unix seconds: the lease);
- **wait**: the others retry every :attr:`LockSettings.poll_s` (with jitter) up to
  :attr:`LockSettings.timeout_s`, then raise :class:`PromotionLockTimeout` naming the holder;
- **release**: delete the lock model (only when it is still ours);
- **break a stale lease**: a holder that died (``kill -9``) leaves the lock; once its lease has
  expired a waiter deletes it (when the holder tag is still the expired one) and competes again.
  The lease (default 300 s) is far longer than the critical section (a few registry calls).

The critical section holds no training or upload: the model is logged first, then the lock is
taken for "create version, read champion, decide, tag, move aliases, write the cards".
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

logger = logging.getLogger(__name__)
_JITTER = random.SystemRandom()  # no seed, no shared state: waiters must not retry in step

LOCK_SUFFIX = ".promotion-lock"
HOLDER_TAG = "holder"
EXPIRES_TAG = "expires_at"


class PromotionLockTimeout(TimeoutError):
    """Another process held the promotion lock for longer than the wait allowed."""


@dataclass(frozen=True)
class LockSettings:
    """How the promotion lock waits.

    Attributes:
        lease_s: seconds after which a holder that did not release counts as dead.
        timeout_s: seconds to wait for the lock before giving up.
        poll_s: mean seconds between two attempts (randomised by +-50 %).
    """

    lease_s: float = 300.0
    timeout_s: float = 900.0
    poll_s: float = 0.5


def lock_name(model_name: str) -> str:
    """The registered model that is the lock of ``model_name``."""
    return f"{model_name}{LOCK_SUFFIX}"


#: What a refused create answers: taken, or (on a server) released between the refusal and
#: the look-up that words the refusal.
_TAKEN = ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST")


def _try_acquire(client: MlflowClient, name: str, holder: str, lease_s: float) -> bool:
    """Create the lock model; ``False`` when someone else holds it."""
    tags = {HOLDER_TAG: holder, EXPIRES_TAG: f"{time.time() + lease_s:.3f}"}
    try:
        client.create_registered_model(name, tags=tags, description="promotion lock (lease)")
    except MlflowException as error:
        if error.error_code not in _TAKEN and "already exists" not in str(error):
            raise
        # A create that succeeded but answered an error (a retried request) is still ours.
        return _current_holder(client, name)[0] == holder
    return True


def _current_holder(client: MlflowClient, name: str) -> tuple[str | None, float | None]:
    """(holder, expires_at) of the lock model; ``(None, None)`` when there is none."""
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException:
        return None, None
    try:
        return tags.get(HOLDER_TAG), float(tags[EXPIRES_TAG])
    except (KeyError, ValueError):
        return tags.get(HOLDER_TAG), None


def _break_if_stale(client: MlflowClient, name: str) -> str | None:
    """Delete the lock when its lease has expired; the broken holder, else ``None``."""
    holder, expires = _current_holder(client, name)
    if holder is None or (expires is not None and expires > time.time()):
        return None
    if _current_holder(client, name)[0] != holder:  # re-check: released or re-taken meanwhile
        return None
    try:
        client.delete_registered_model(name)
    except MlflowException:
        return None
    logger.warning("MLflow: broke the expired promotion lock %s held by %s", name, holder)
    return holder


def _release(client: MlflowClient, name: str, holder: str) -> None:
    """Delete the lock model if it is still ours (never raises: the lease expires anyway)."""
    try:
        if _current_holder(client, name)[0] == holder:
            client.delete_registered_model(name)
    except MlflowException as error:
        logger.warning("MLflow: could not release %s (%s); its lease will expire", name, error)


def holder_id(run_id: str | None = None) -> str:
    """``host:pid:run`` naming this process (and the run it registers) in the lock's tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{run_id or '-'}"


@contextmanager
def held(
    client: MlflowClient,
    model_name: str,
    holder: str | None = None,
    settings: LockSettings | None = None,
) -> Iterator[None]:
    """Hold the promotion lock of ``model_name`` while the block runs (see the module doc).

    Raises:
        PromotionLockTimeout: the lock stayed taken for ``settings.timeout_s`` seconds.
    """
    settings = settings or LockSettings()
    holder = holder or holder_id()
    name = lock_name(model_name)
    deadline = time.monotonic() + settings.timeout_s
    waited = False
    while not _try_acquire(client, name, holder, settings.lease_s):
        if _break_if_stale(client, name) is not None:
            continue
        if time.monotonic() > deadline:
            other, _ = _current_holder(client, name)
            raise PromotionLockTimeout(
                f"registered model {model_name!r}: the promotion lock {name!r} is held by "
                f"{other} for more than {settings.timeout_s:g} s; if that process is gone, "
                f"delete the registered model {name!r} (or wait {settings.lease_s:g} s)"
            )
        if not waited:
            logger.info("MLflow: waiting for the promotion lock %s", name)
            waited = True
        time.sleep(settings.poll_s * _JITTER.uniform(0.5, 1.5))
    try:
        yield
    finally:
        _release(client, name, holder)
