"""Thread lifecycle rows from ``threading.enumerate()``, polled at every drain.

Nothing in :mod:`threading` is patched: each poll compares the live threads with the last
poll and emits ``start`` (first seen, with its name and native id), ``name`` (renamed) and
``exit`` (gone) rows. Threads started before :func:`memscope.init` are seen at the first poll.
Threads started later also announce themselves as they start (:meth:`ThreadWatcher.born`,
run through ``threading.setprofile`` by the session, unless the program has its own thread
profile hook), so a thread that lives shorter than a flush interval is still named, with its
real start time. Other timestamps are when the poll saw the change (at most one flush
interval late).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from memscope.producer.rows import RowBuffer

#: Threads named with this prefix are memscope's own (the publisher) and are not reported.
OWN_THREAD_PREFIX = "memscope-"


def own_thread(thread: threading.Thread) -> bool:
    """Whether this is memscope's publisher or a pyzmq helper thread (not the program's)."""
    module = type(thread).__module__
    return thread.name.startswith(OWN_THREAD_PREFIX) or module.startswith("zmq")


class ThreadWatcher:
    """Remembers the threads of the last poll; ``poll`` runs in the publisher thread only.

    Threads are keyed by their ``tid`` in the log (``tid_of(ident)``, the tracer's serial
    of the thread; see :func:`memscope.producer.capture.thread_id`): CPython reuses idents,
    so two threads run one after the other are two rows, each with its own events.
    """

    __slots__ = ("_known", "_born", "_tid_of", "_this_tid")

    def __init__(
        self, tid_of: Callable[[int], int] | None = None, this_tid: Callable[[], int] | None = None
    ) -> None:
        self._known: dict[int, tuple[int | None, str]] = {}  # tid -> (native id, name)
        self._born: collections.deque[tuple[int, int, int | None, str]] = collections.deque()
        self._tid_of = tid_of if tid_of is not None else (lambda ident: ident)
        self._this_tid = this_tid if this_tid is not None else threading.get_ident

    def reset(self) -> None:
        """Forget every thread (a forked child has only the thread that forked)."""
        self._known.clear()
        self._born.clear()

    def born(self) -> None:
        """Called in a new thread as it starts: its start is recorded even if it ends soon."""
        thread = threading.current_thread()
        if thread.ident is not None and not own_thread(thread):
            self._born.append(
                (time.monotonic_ns(), self._this_tid(), thread.native_id, thread.name)
            )

    def _births(self, rows: RowBuffer) -> None:
        while True:
            try:
                ts_ns, tid, native_id, name = self._born.popleft()
            except IndexError:
                return
            self._seen(rows, tid, native_id, name, ts_ns)

    def _seen(
        self, rows: RowBuffer, tid: int, native_id: int | None, name: str, ts_ns: int
    ) -> None:
        """Record thread ``tid`` (started, or renamed since the last poll)."""
        known = self._known.get(tid)
        if known is None or known[1] != name:
            rows.add(
                "threads",
                tid=tid,
                ts_ns=ts_ns,
                event="start" if known is None else "name",
                native_id=native_id,
                name=name,
            )
            self._known[tid] = (native_id, name)

    def _gone(self, rows: RowBuffer, tid: int, ts_ns: int) -> None:
        native_id, name = self._known.pop(tid)
        rows.add("threads", tid=tid, ts_ns=ts_ns, event="exit", native_id=native_id, name=name)

    def poll(self, rows: RowBuffer) -> None:
        """Queue rows for every thread started, renamed or gone since the last poll."""
        self._births(rows)
        now = time.monotonic_ns()
        alive: dict[int, threading.Thread] = {}
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is not None and not own_thread(thread):
                tid = self._tid_of(ident)
                if tid:  # 0: not seen by the tracer yet (named at a later poll)
                    alive[tid] = thread
        for tid, thread in alive.items():
            self._seen(rows, tid, thread.native_id, thread.name, now)
        for tid in [t for t in self._known if t not in alive]:
            self._gone(rows, tid, now)
