"""Hand freed heap memory back to the kernel (glibc ``malloc_trim``).

A pusher frees one access unit per frame, allocated in the demux thread and released on the
event loop; glibc keeps such freed memory in its arenas. Trimming every second
keeps the resident set near what is in use (about 4 MiB less at 1080p, see
``docs/benchmarks.md``). Elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def heap_trimmer() -> Callable[[], None]:
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def run() -> None:
        trim(0)

    return run
