"""Per-test memory figures from a log still being written: one warm helper per pytest session.

The pytest plugin (:mod:`memscope.integrations.pytest_plugin`) starts ``python -m
memscope.integrations.pytest_window LOG`` once, untraced, and asks it about each marked test: one
JSON request per line on stdin, one JSON answer per line on stdout. The helper reads only
what the log added since the last request (:class:`memscope.analyzers.state.LogCursor`) and
replays the test's events itself, so a request costs the test's own events, not a pass over
the log or a new interpreter with DuckDB. Requests come in time order (a test may ask about
its window more than once: the events from the last request's start are kept).

A request: ``{"pid", "t0", "t1", "filename", "function", "tid"}`` (``tid`` null for every
thread). The events of process ``pid`` with ``t0 <= ts_ns <= t1`` are replayed in time order;
only the blocks allocated in that window count (a free of an older block is ignored), and
with ``tid`` only the blocks that thread allocated (pytest-memray's ``current_thread_only``).
The answer (definitions as in :mod:`memscope.integrations.pytest_measure`):

* ``peak_bytes``: the highest total of those blocks alive at once; ``peak_groups``: what
  was alive at that moment, by allocation stack;
* ``leaked_bytes`` / ``leaked_blocks``: those still alive at ``t1`` whose stack includes the
  test function (``filename`` and ``function``: ``co_filename`` and ``co_qualname``);
  ``leak_groups``: the same, by stack.

A group is ``{"bytes", "blocks", "frames"}``, frames innermost first as ``[function,
filename, lineno]`` (at most :data:`MAX_FRAMES`), largest groups first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from memscope.analyzers.state import LogCursor
from memscope.eventlog.chunks import decode_chunk_batches
from memscope.integrations.pytest_tap import replay

#: Frames kept per group (deeper ones are cut; the test function is looked for in all).
MAX_FRAMES = 64
#: Groups returned per list (the largest); the leaks' own total counts every group.
MAX_GROUPS = 200
_COLUMNS = ("pid", "tid", "ts_ns", "kind", "address", "old_address", "size", "stack_id")

Frame = tuple[str, str, int]
Block = tuple[int, int]  # (size, stack_id)


class StackTree:
    """The interned stack tree of the log's processes, grown as the log grows."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], tuple[int, int]] = {}  # (pid, id) -> (parent, frame)
        self.frames: dict[tuple[int, int], Frame] = {}

    def add(self, stacks: Iterator[pa.RecordBatch], frames: Iterator[pa.RecordBatch]) -> None:
        """Add new ``stacks`` and ``frames`` rows."""
        for batch in stacks:
            cols = [
                batch.column(n).to_pylist() for n in ("pid", "stack_id", "parent_id", "frame_id")
            ]
            for pid, sid, parent, frame in zip(*cols, strict=True):
                self.nodes[(pid, sid)] = (parent, frame)
        for batch in frames:
            cols = [
                batch.column(n).to_pylist()
                for n in ("pid", "frame_id", "function", "filename", "lineno")
            ]
            for pid, fid, fn, file, line in zip(*cols, strict=True):
                self.frames[(pid, fid)] = (str(fn), str(file), int(line or 0))

    def walk(self, pid: int, stack_id: int, limit: int = 512) -> list[Frame]:
        """The frames of a stack, innermost first."""
        out: list[Frame] = []
        node = stack_id
        while node and len(out) < limit:
            found = self.nodes.get((pid, node))
            if found is None:
                break
            parent, frame_id = found
            frame = self.frames.get((pid, frame_id))
            if frame is not None:
                out.append(frame)
            node = parent
        return out


class WindowReader:
    """Reads a log incrementally and answers requests about time windows (module doc)."""

    def __init__(self, log: str | Path) -> None:
        self.log = Path(log)
        self.cursor = LogCursor()
        self.stacks = StackTree()
        self.problems: list[str] = []
        #: The events of the last request's window onwards (a test asks more than once).
        self._kept = {name: np.zeros(0, dtype=np.int64) for name in _COLUMNS}

    def _events_since(self, t0: int) -> dict[str, np.ndarray]:
        """The events from ``t0`` on: those kept from the last request and the log's new ones.

        Requests come in time order, so what is before ``t0`` is dropped for good.
        """
        from memscope.eventlog.log import open_log

        reader = open_log(self.log)
        batches = list(self.cursor.new_batches(reader, "memory"))
        batches += decode_chunk_batches(
            self.cursor.new_batches(reader, "memory_chunks"), on_problem=self.problems.append
        )
        self.stacks.add(
            self.cursor.new_batches(reader, "stacks"), self.cursor.new_batches(reader, "frames")
        )
        parts = [self._kept] + [
            {name: b.column(name).to_numpy() for name in _COLUMNS} for b in batches if b.num_rows
        ]
        events = {
            name: np.concatenate([np.asarray(p[name], dtype=np.int64) for p in parts])
            for name in _COLUMNS
        }
        recent = events["ts_ns"] >= t0
        self._kept = {name: values[recent] for name, values in events.items()}
        return self._kept

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The figures of one request (see the module docstring)."""
        pid, t0, t1 = int(request["pid"]), int(request["t0"]), int(request["t1"])
        ev = self._events_since(t0)
        keep = (ev["pid"] == pid) & (ev["ts_ns"] >= t0) & (ev["ts_ns"] <= t1)
        order = np.flatnonzero(keep)
        order = order[np.argsort(ev["ts_ns"][order], kind="stable")]
        rows = list(
            zip(
                *(
                    ev[n][order].tolist()
                    for n in ("tid", "kind", "address", "old_address", "size", "stack_id")
                ),
                strict=True,
            )
        )
        tid = request.get("tid")
        live, _, peak, peak_at = replay(rows, tid)
        at_peak, _, _, _ = replay(rows, tid, stop=peak_at)
        own = self._own_stacks(pid, live, str(request["filename"]), str(request["function"]))
        leaked = {a: b for a, b in live.items() if b[1] in own}
        leak_groups = self._groups(pid, leaked)
        return {
            "peak_bytes": peak,
            "peak_groups": self._groups(pid, at_peak)[:MAX_GROUPS],
            "leaked_bytes": sum(size for size, _ in leaked.values()),
            "leaked_blocks": len(leaked),
            "leak_groups": leak_groups,
            "events": len(rows),
        }

    def _own_stacks(
        self, pid: int, live: dict[int, Block], filename: str, function: str
    ) -> set[int]:
        own = set()
        for stack_id in {stack for _, stack in live.values()}:
            frames = self.stacks.walk(pid, stack_id)
            if any(fn == function and file == filename for fn, file, _ in frames):
                own.add(stack_id)
        return own

    def _groups(self, pid: int, blocks: dict[int, Block]) -> list[dict[str, Any]]:
        totals: dict[int, list[int]] = {}
        for size, stack in blocks.values():
            group = totals.setdefault(stack, [0, 0])
            group[0] += size
            group[1] += 1
        ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
        return [
            {
                "bytes": n,
                "blocks": count,
                "frames": [list(f) for f in self.stacks.walk(pid, stack, MAX_FRAMES)],
            }
            for stack, (n, count) in ranked
        ]


def main(argv: list[str] | None = None) -> int:
    """Serve requests from stdin until it closes (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m memscope.integrations.pytest_window LOG", file=sys.stderr)
        return 2
    window = WindowReader(args[0])
    for line in sys.stdin:
        try:
            answer: dict[str, Any] = window.answer(json.loads(line))
        except (OSError, ValueError, KeyError, RuntimeError, pa.ArrowException) as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
