"""Per-test memory figures measured in the test process, from the tracer's own drains.

The pytest plugin (:mod:`memscope.integrations.pytest_plugin`) registers a :class:`WindowTap`
with the session (:data:`memscope.producer.session.taps`) before tracing starts, so the tap
sees every drain of the session: it keeps the interned stack tree (``stacks`` and ``frames``
rows) for the whole session, and the memory chunks drained while a test's window is armed.
After the test, a flush makes the publisher drain everything recorded up to then; the tap
decodes the window's chunks (the C decoder) and replays them, with the definitions and the
answer of :class:`memscope.integrations.pytest_window.WindowReader` -- without waiting for the
broker or a helper process. Only the standard library is used (nothing heavy is imported
into the traced process); the caller runs :meth:`WindowTap.answer` with its thread paused.
"""

from __future__ import annotations

import sys
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

from memscope.protocol.wire import KIND_FREE, KIND_REALLOC

#: Frames kept per group (deeper ones are cut; the test function is looked for in all).
MAX_FRAMES = 64
#: Groups returned per list (the largest); the leaks' own total counts every group.
MAX_GROUPS = 200
#: ``array`` type codes of the memory columns (``MEMORY_COLUMNS`` order).
_CODES = (
    ("ts_ns", "q"),
    ("kind", "B"),
    ("domain", "B"),
    ("address", "Q"),
    ("old_address", "Q"),
    ("size", "Q"),
    ("stack_id", "I"),
)

_FOREVER = (1 << 63) - 1
Frame = tuple[str, str, int]
Block = tuple[int, int]  # (size, stack_id)
Event = tuple[int, int, int, int, int, int]  # (tid, kind, address, old_address, size, stack)


def _column(data: Any, code: str) -> array[Any]:
    values = array(code)
    values.frombytes(bytes(data))
    if sys.byteorder == "big" and values.itemsize > 1:  # the wire is little-endian
        values.byteswap()
    return values


def decode(chunk: dict[str, Any], t0: int = 0, t1: int = _FOREVER) -> list[tuple[int, Event]]:
    """``(ts_ns, event)`` of a drained memory chunk's records in ``[t0, t1]``, in order.

    The chunk is rec1 (the C decoder) or cols1.
    """
    n = int(chunk.get("n", 0))
    if n <= 0:
        return []
    if chunk.get("enc") == "rec1":
        from memscope.protocol import _rec1

        raw: Sequence[Any] = _rec1.decode_rec1(bytes(chunk["data"]), n)
    else:
        cols = chunk["cols"]
        raw = [cols[name] for name, _ in _CODES]
    ts, kind, _, address, old, size, stack = (
        _column(data, code) for data, (_, code) in zip(raw, _CODES, strict=True)
    )
    tid = int(chunk.get("tid", 0))
    return [
        (ts[i], (tid, kind[i], address[i], old[i], size[i], stack[i])) for i in _between(ts, t0, t1)
    ]


def _between(ts: array[int], t0: int, t1: int) -> Iterable[int]:
    """The indexes of ``t0 <= ts[i] <= t1``.

    A bisection when ``ts`` is in order (one thread's records are; checked, not assumed).
    """
    if all(a <= b for a, b in zip(ts, islice(ts, 1, None), strict=False)):
        return range(bisect_left(ts, t0), bisect_right(ts, t1))
    return [i for i, t in enumerate(ts) if t0 <= t <= t1]


def replay(
    rows: Iterable[Event], tid: int | None = None, stop: int = -1
) -> tuple[dict[int, Block], int, int, int]:
    """Replay ``(tid, kind, address, old_address, size, stack_id)`` events in order.

    Returns ``(live blocks by address, level at the end, peak level, index of the event
    that reached the peak, -1 if none)``; with ``stop`` >= 0 it ends after that event.
    Only blocks allocated by these events count (with ``tid``: by that thread).
    """
    live: dict[int, Block] = {}
    level = peak = 0
    peak_at = -1
    for i, (thread, kind, address, old, size, stack) in enumerate(rows):
        if kind == KIND_FREE or (kind == KIND_REALLOC and old):
            gone = live.pop(address if kind == KIND_FREE else old, None)
            if gone is not None:
                level -= gone[0]
        if kind != KIND_FREE and address and (tid is None or thread == tid):
            before = live.get(address)  # a start at a live address: its free was missed
            if before is not None:
                level -= before[0]
            live[address] = (size, stack)
            level += size
            if level > peak:
                peak, peak_at = level, i
        if i == stop:
            break
    return live, level, peak, peak_at


class WindowTap:
    """A session tap (``tap(chunks, rare)`` per drain) answering per-test window requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.nodes: dict[int, tuple[int, int]] = {}  # stack_id -> (parent, frame_id)
        self.frames: dict[int, Frame] = {}
        self._armed = False
        self._chunks: list[dict[str, Any]] = []

    def __call__(
        self,
        chunks: list[dict[str, Any]],
        rare: dict[str, dict[str, list[Any]]],
    ) -> None:
        """One drain of the session (in the publisher thread): keep what windows need."""
        stacks, frames = rare.get("stacks"), rare.get("frames")
        with self._lock:
            if stacks:
                self.nodes.update(
                    zip(
                        stacks["stack_id"],
                        zip(stacks["parent_id"], stacks["frame_id"], strict=True),
                        strict=True,
                    )
                )
            if frames:
                for fid, fn, file, line in zip(
                    frames["frame_id"],
                    frames["function"],
                    frames["filename"],
                    frames["lineno"],
                    strict=True,
                ):
                    self.frames[fid] = (str(fn), str(file), int(line or 0))
            if self._armed:
                self._chunks += chunks

    def arm(self) -> None:
        """From now on keep the drained memory chunks (a window starts after this call)."""
        with self._lock:
            self._armed = True
            self._chunks = []

    def disarm(self) -> list[dict[str, Any]]:
        """Stop keeping chunks; the ones kept since :meth:`arm`."""
        with self._lock:
            self._armed = False
            chunks, self._chunks = self._chunks, []
        return chunks

    def walk(self, stack_id: int, limit: int = 512) -> list[Frame]:
        """The frames of a stack, innermost first."""
        out: list[Frame] = []
        node = stack_id
        with self._lock:
            while node and len(out) < limit:
                found = self.nodes.get(node)
                if found is None:
                    break
                parent, frame_id = found
                frame = self.frames.get(frame_id)
                if frame is not None:
                    out.append(frame)
                node = parent
        return out

    def answer(
        self, t0: int, t1: int, filename: str, function: str, tid: int | None = None
    ) -> dict[str, Any]:
        """The window ``[t0, t1]``'s figures from the chunks kept since :meth:`arm`.

        The caller has flushed the session after ``t1`` (every event of the window is
        drained); the tap stays armed (a test may ask again, e.g. per thread filter).
        """
        with self._lock:
            chunks = list(self._chunks)
        timed = [e for chunk in chunks for e in decode(chunk, t0, t1)]
        timed.sort(key=lambda e: e[0])  # stable: ties keep drain order
        rows = [event for _, event in timed]
        live, _, peak, peak_at = replay(rows, tid)
        at_peak, _, _, _ = replay(rows, tid, stop=peak_at)
        own = {
            stack
            for _, stack in live.values()
            if any(fn == function and file == filename for fn, file, _ in self.walk(stack))
        }
        leaked = {a: b for a, b in live.items() if b[1] in own}
        return {
            "peak_bytes": peak,
            "peak_groups": self._groups(at_peak)[:MAX_GROUPS],
            "leaked_bytes": sum(size for size, _ in leaked.values()),
            "leaked_blocks": len(leaked),
            "leak_groups": self._groups(leaked),
            "events": len(rows),
        }

    def _groups(self, blocks: dict[int, Block]) -> list[dict[str, Any]]:
        totals: dict[int, list[int]] = {}
        for size, stack in blocks.values():
            group = totals.setdefault(stack, [0, 0])
            group[0] += size
            group[1] += 1
        ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
        return [
            {"bytes": n, "blocks": count, "frames": [list(f) for f in self.walk(stack, MAX_FRAMES)]}
            for stack, (n, count) in ranked
        ]
