"""Keep asynchronous signals away from memscope's own threads.

CPython runs signal handlers in the main thread, but the kernel hands a process-directed
signal (``kill``, Ctrl-C) to any thread that does not block it. If memscope's publisher
thread took a SIGINT, the handler would only set a flag, and a main thread blocked in
``time.sleep`` or ``input`` would not be interrupted: the traced program would ignore Ctrl-C.
:func:`shield_current_thread` blocks every asynchronous signal in the calling thread, so they
reach the program's threads exactly as without memscope.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

# Signals raised by the faulting thread itself; blocking them would hide crashes.
_SYNCHRONOUS = {
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGTRAP,
    signal.SIGSYS,
    signal.SIGABRT,
    signal.SIGKILL,
    signal.SIGSTOP,
}
ASYNCHRONOUS = frozenset(signal.valid_signals()) - _SYNCHRONOUS

_local = threading.local()


def shield_current_thread() -> None:
    """Block asynchronous signals in the calling thread (once per thread; cheap after)."""
    if getattr(_local, "shielded", False):
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, ASYNCHRONOUS)
    _local.shielded = True


@contextlib.contextmanager
def blocked() -> Iterator[None]:
    """Block asynchronous signals while inside; threads started inside inherit the block."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ASYNCHRONOUS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
