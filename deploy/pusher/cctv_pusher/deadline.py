"""A hard bound on a blocking FFmpeg call that nothing in the process can interrupt.

FFmpeg's WHIP muxer does its HTTP exchange (the offer's POST in ``avformat_write_header``, the
session's DELETE in ``av_write_trailer``) with no timeout option, and PyAV holds the GIL in
both calls and sets no interrupt callback on output containers. A WHIP endpoint that accepts
the connection and never answers would hang the pusher for good: no Python signal handler,
thread or timer can run while the GIL is held.

:func:`hard_deadline` bounds such a call from outside the interpreter:

* the calling process sets the C library's ``_exit`` as the native handler of a signal whose
  number is the wanted exit status (``SIGHUP`` = 1, ``SIGQUIT`` = 3), so the kernel runs it
  even while the GIL is held, and it is async-signal-safe;
* it forks a watchdog child (copy-on-write, no new memory to speak of) that sleeps for the
  bound, runs ``last_words`` (the log lines that say why) and sends that signal to its parent;
* when the call returns in time, the child is killed and reaped, and the handler restored.

The process then ends with the contract's exit status and its log lines, never a hang and
never a stray status. Fork only where no other thread runs (the child gets only the forking
thread, and only ever sleeps, logs and signals).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable, Iterator

# The signal whose number is the exit status the native handler ``_exit(signum)`` gives.
EXIT_SIGNALS = {1: signal.SIGHUP, 3: signal.SIGQUIT}


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    return libc


@contextlib.contextmanager
def hard_deadline(seconds: float, exit_code: int, last_words: Callable[[], None]) -> Iterator[None]:
    """Within ``seconds`` the block ends, or the process exits with ``exit_code`` (1 or 3)
    once ``last_words()`` ran in the watchdog child (it logs why)."""
    signum = EXIT_SIGNALS[exit_code]
    libc = _libc()
    native_exit = ctypes.cast(libc._exit, ctypes.c_void_p).value
    previous = libc.signal(signum, native_exit)
    parent = os.getpid()
    child = os.fork()
    if child == 0:  # the watchdog: sleep, speak, signal; never return into the caller's code
        try:
            time.sleep(seconds)
            last_words()
            os.kill(parent, signum)
        finally:
            os._exit(0)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
        libc.signal(signum, previous)
