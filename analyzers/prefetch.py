"""Read ahead of a slow consumer by a bounded number of items, on a background thread.

pyarrow's threaded dataset scanner does not bound its read-ahead for Arrow IPC files: a
consumer slower than decompression (the block matcher) lets it decode a whole segment
ahead, about 1 GiB for a 50-million-event log. A single-threaded scanner is bounded but
then decompression no longer overlaps the matching. :func:`prefetched` restores the overlap
with a fixed depth: the producer thread runs the iterator (pyarrow releases the GIL while it
reads and decompresses) and waits whenever ``depth`` items are ready.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Yield ``items`` in order, computed at most ``depth`` items ahead on a thread.

    An exception raised by ``items`` is raised here, at the position it occurred. Closing
    the generator early stops the thread (it finishes the item it is computing, then exits).
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 -- handed to the consumer, raised there
            put(_Failure(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name="memscope-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
