"""Keep tracing across ``os.fork()``: the child becomes a new producer of the same log.

:func:`install` registers (once per process, with ``os.register_at_fork``) a child hook that
resets the C capture, takes a new producer id ``host:pid:start_ns``, gives the publisher a new
socket and thread, and queues a ``processes`` ``start`` row whose ``ppid`` is the parent.

A forked child ends either normally (``atexit`` runs :func:`memscope.shutdown`), as a
``multiprocessing`` worker (which leaves through ``os._exit``: a ``multiprocessing`` finalizer
is registered in the child so that its final batch and ``exit`` row still go out), or through
a bare ``os._exit``. For that last way out, of any traced process, :func:`install` also puts a
wrapper in place of ``os._exit`` that ships the final batch first (:data:`real_exit` is the
original, for memscope's own use); the exit status is the program's.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

#: ``os._exit`` as it was before :func:`install` (memscope's own threads exit through it).
real_exit = os._exit

_installed = False
_child_hook: Callable[[], None] | None = None
_shutdown: Callable[[], None] | None = None


def install(child_hook: Callable[[], None], shutdown: Callable[[], None]) -> None:
    """Run ``child_hook`` in every forked child; ``shutdown`` ends a multiprocessing child."""
    global _installed, _child_hook, _shutdown
    _child_hook = child_hook
    _shutdown = shutdown
    if not _installed:
        os.register_at_fork(after_in_child=_after_in_child)
        os._exit = _exit_after_final_batch
        _installed = True


@functools.wraps(real_exit)
def _exit_after_final_batch(status: int) -> NoReturn:
    shutdown = _shutdown
    if shutdown is not None:
        try:
            shutdown()
        except Exception as exc:  # noqa: BLE001 -- the program asked to exit now: it must
            sys.stderr.write(f"memscope: pid {os.getpid()}: final batch not sent: {exc}\n")
    real_exit(status)


def _after_in_child() -> None:
    hook = _child_hook
    if hook is None:
        return
    hook()
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        # multiprocessing's child bootstrap clears finalizers, then runs after-fork callbacks:
        # register one there that adds the finalizer which ships this child's final batch.
        util.register_after_fork(_Token, _register_finalizer)


class _Token:
    """A long-lived object for multiprocessing's weakly keyed after-fork registry."""


def _register_finalizer(_: object) -> None:
    util = sys.modules.get("multiprocessing.util")
    if util is not None and _shutdown is not None:
        util.Finalize(None, _shutdown, exitpriority=-1000)


def reset_inherited_locks() -> None:
    """In a forked child: replace locks a parent thread may have held at the fork.

    pyzmq's zero-copy garbage collector restarts itself in a child under ``gc._lock``; if the
    parent's publisher thread was starting it (holding that lock) when another thread forked,
    the child's first zero-copy send would wait for it forever.
    """
    garbage = sys.modules.get("zmq.utils.garbage")
    collector = getattr(garbage, "gc", None)
    if collector is not None and hasattr(collector, "_lock"):
        collector._lock = threading.Lock()
