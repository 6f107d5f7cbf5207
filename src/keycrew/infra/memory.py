"""Process memory settings for a serving process.

glibc gives each thread that allocates concurrently a malloc arena of its own (up to eight per
core), and memory freed in one arena is not reused by the others: a worker whose threadpool
serves requests grows its resident memory arena by arena under load, without leaking anything.
Capping the arenas (the MALLOC_ARENA_MAX knob, set here through mallopt before the threads start)
keeps a worker's memory flat at a negligible cost for a GIL-bound process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("keycrew")

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; False where the C library is not glibc (nothing changes)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.debug("mallopt(M_ARENA_MAX) refused")
    return done
