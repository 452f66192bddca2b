"""Serialise the creation of a file-based tracking store (``sqlite:///.../mlflow.db``).

MLflow creates the sqlite schema on first use. Two ``kedro run``s started together in a fresh
folder both try, and one fails with ``table ... already exists`` (which would be reported as an
unreachable store, and the run would train untracked). An exclusive ``flock`` on
``<db>.lock`` around the first contact makes the second process wait until the schema exists.

It serialises one machine's processes only; promotions are serialised for every store, across
machines, by :mod:`.promotion_lock`.
"""

from __future__ import annotations

import fcntl
import logging
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or ``None`` for other stores (and memory)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "sqlite" or parsed.path in ("", "/", "/:memory:"):
        return None
    return Path(urllib.parse.unquote(parsed.path))


@contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a sqlite store while the block runs (no-op for others)."""
    database = sqlite_path(uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    lock_path = database.with_name(database.name + ".lock")
    with open(lock_path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process creating or opening %s", database)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
