"""Thread lifecycle rows from ``threading.enumerate()``, polled at every drain.

Nothing in :mod:`threading` is patched: each poll compares the live threads with the last
poll and emits ``start`` (first seen, with its name and native id), ``name`` (renamed) and
``exit`` (gone) rows. Threads started before :func:`memscope.init` are seen at the first poll.
The timestamps are when the poll saw the change (at most one flush interval late); a thread
that starts and ends between two polls gets no row here, though its allocator events still
carry its ``tid``.
"""

from __future__ import annotations

import threading
import time

from memscope.producer.rows import RowBuffer

#: Threads named with this prefix are memscope's own (the publisher) and are not reported.
OWN_THREAD_PREFIX = "memscope-"


def _own(thread: threading.Thread) -> bool:
    """Whether this is memscope's publisher or a pyzmq helper thread (not the program's)."""
    module = type(thread).__module__
    return thread.name.startswith(OWN_THREAD_PREFIX) or module.startswith("zmq")


class ThreadWatcher:
    """Remembers the threads of the last poll; not thread-safe (the publisher thread polls)."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[int, str] = {}

    def reset(self) -> None:
        """Forget every thread (a forked child has only the thread that forked)."""
        self._known.clear()

    def poll(self, rows: RowBuffer) -> None:
        """Queue rows for every thread started, renamed or gone since the last poll."""
        now = time.monotonic_ns()
        alive: dict[int, threading.Thread] = {}
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is not None and not _own(thread):
                alive[ident] = thread
        for ident, thread in alive.items():
            name = thread.name
            previous = self._known.get(ident)
            if previous == name:
                continue
            event = "start" if previous is None else "name"
            rows.add(
                "threads",
                tid=ident,
                ts_ns=now,
                event=event,
                native_id=thread.native_id,
                name=name,
            )
            self._known[ident] = name
        for ident in [i for i in self._known if i not in alive]:
            rows.add(
                "threads", tid=ident, ts_ns=now, event="exit", native_id=None,
                name=self._known.pop(ident),
            )
