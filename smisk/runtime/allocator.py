"""Allocator settings for a server process (glibc's malloc).

With its default settings glibc gives every block of 128 KiB or more its own ``mmap()`` and hands
memory back to the system as soon as a little is free at the top of the heap (128 KiB, rising to
twice the largest block freed so far). A server whose requests carry bodies of a few hundred KiB
to a few MiB then maps, faults in, zeroes and unmaps fresh pages for every request: with 32
concurrent 1 MiB echo requests that cost more CPU than everything else the server did for them.

``tune()`` serves blocks up to ``MMAP_THRESHOLD`` from the heap and lets the heap keep up to
``keep`` bytes of freed memory for the next requests. It also caps malloc's arenas at ``ARENAS``:
glibc gives each new thread an arena of its own (up to eight per core), and each arena keeps its
own freed memory, so 32 handler threads answering 64 KiB responses held that much times 16. ``smisk-serve`` and ``Application.run()``
call it at start-up (``--malloc-keep MIB``, ``SMISK_MALLOC_KEEP``; 0 turns it off); an embedding
program decides for itself. Settings given through glibc's own ``MALLOC_*_`` environment
variables win: then nothing is changed.

Rules: no effect, and no error, where the C library is not glibc.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable, Mapping

__all__ = ["ARENAS", "DEFAULT_KEEP", "MMAP_THRESHOLD", "keep_from_environ", "tune"]

log = logging.getLogger("smisk")

MIB = 1024 * 1024
MMAP_THRESHOLD = 4 * MIB  # blocks this large and larger still get their own mapping
DEFAULT_KEEP = 64 * MIB  # freed memory a process may keep for reuse (M_TRIM_THRESHOLD)
# malloc arenas per process: Python threads allocate while holding the GIL, so they rarely
# contend for an arena, and every extra arena is one more heap keeping freed memory.
ARENAS = 2
_M_TRIM_THRESHOLD = -1  # mallopt() parameters, from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_GLIBC_VARIABLES = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
    "MALLOC_ARENA_MAX",
)
_INT_MAX = 2**31 - 1


def _mallopt() -> Callable[[int, int], int] | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    import ctypes  # here, not at import: programs that never tune do not load it

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def tune(keep: int = DEFAULT_KEEP, environ: Mapping[str, str] | None = None) -> bool:
    """Keep up to ``keep`` bytes of freed memory, serve blocks below ``MMAP_THRESHOLD`` from
    the heap and use at most ``ARENAS`` arenas; True when applied. Nothing changes for ``keep`` <= 0, outside glibc, or when one
    of glibc's ``MALLOC_*_`` variables is set in ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    if keep <= 0 or any(name in env for name in _GLIBC_VARIABLES):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    applied = all(
        mallopt(parameter, value)
        for parameter, value in (
            (_M_ARENA_MAX, ARENAS),
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, min(keep, _INT_MAX)),
        )
    )
    if not applied:
        log.debug("mallopt refused the allocator settings")
    return applied


def keep_from_environ(environ: Mapping[str, str] | None = None) -> int:
    """Bytes ``SMISK_MALLOC_KEEP`` asks for (given in MiB), else ``DEFAULT_KEEP``.
    Raises ``ValueError`` naming the variable when it is not a whole number >= 0."""
    env = os.environ if environ is None else environ
    text = env.get("SMISK_MALLOC_KEEP", "").strip()
    if not text:
        return DEFAULT_KEEP
    if not text.isdigit():
        raise ValueError(f"SMISK_MALLOC_KEEP={text!r} is not a whole number of MiB")
    return int(text) * MIB
