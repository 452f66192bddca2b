"""Permissions of the files and folders the library creates through ``tempfile``.

``tempfile.mkstemp`` creates files 0600 and ``mkdtemp`` folders 0700 whatever the umask, which is
right for secrets and wrong for checkpoints and caches that a team shares: after the atomic
rename they would keep those modes. These helpers give them the modes ``open``/``mkdir`` would.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read from ``/proc`` on Linux; elsewhere set and restored, locked)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike[str]) -> None:
    """chmod ``path`` to 0666 (files) or 0777 (folders) minus the umask, as ``open``/``mkdir``."""
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~current_umask())
