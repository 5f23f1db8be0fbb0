"""Keep freed memory in the process heap, so a tick's temporaries do not fault in fresh pages."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("cdnops.detect")

# glibc's mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# A tick over 20,000 appliances x 12 metrics allocates temporaries of about 1 MB each;
# up to this size they come from (and go back to) the heap.
HEAP_LIMIT_BYTES = 32 << 20

_applied: bool | None = None


def keep_heap() -> bool:
    """Serve allocations below `HEAP_LIMIT_BYTES` from the heap and keep that much free at
    its top, instead of glibc's adaptive default.

    With the default, glibc may hand each large temporary its own fresh mapping and unmap
    it when freed; a steady daemon's tick then faulted in about 1,400 zeroed pages (5.5 MB)
    every tick, a few ms of a 20-25 ms tick on the benchmark fleet. The cost is that up to
    `HEAP_LIMIT_BYTES` of freed memory stays with the process. Only glibc has `mallopt`;
    elsewhere this does nothing and returns False. Runs once per process.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.debug("mallopt not available; the heap keeps its default policy")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, HEAP_LIMIT_BYTES) == 1)
    ok &= bool(mallopt(_M_TRIM_THRESHOLD, HEAP_LIMIT_BYTES) == 1)
    _applied = ok
    return ok
