"""Keep freed CPU memory inside the process, so training steps stop paying page faults (glibc).

glibc's ``malloc`` serves blocks above a (dynamic, at most 32 MiB) threshold with ``mmap`` and
returns them to the kernel on ``free``; it also trims the top of the heap. A training step frees
and re-allocates the same large activation and gradient buffers every iteration, so each step
the kernel maps and zeroes those pages again: on 2 CPU cores at imgsz 320 that was about 80,000
minor page faults and 0.25-0.35 s of system time per step of 16 images. With ``mmap`` off and
trimming effectively off (``mallopt(M_MMAP_MAX, 0)``, ``mallopt(M_TRIM_THRESHOLD, INT_MAX)``)
freed blocks are reused: about 15,000 faults, 0.06 s, and the step went from 1.79-1.97 s to
1.67 s. The cost is that the process keeps its peak heap until it exits.

Only glibc has ``mallopt``; elsewhere (macOS, musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import logging
import platform

LOGGER = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4
INT_MAX = 2**31 - 1


def retain_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse; True when it applied (Linux with glibc)."""
    if platform.system() != "Linux":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1
    if applied:
        LOGGER.debug("glibc malloc: mmap and trimming off, freed memory is reused")
    return applied
