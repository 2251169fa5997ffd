"""The broker's running totals: ``get_stats`` of a full-mode process without re-analysis.

After the first ``stats`` request (:mod:`memscope.broker.control`) a :class:`TotalsKeeper`
holds the analyzers' running totals (``RunningTotals``, handed in as
``LogAnalysis.running_totals``): folded once from the log so
far, on the broker's thread, then fed every group of batches the broker writes (the memory
rows it just wrote, decoded again from the chunks it kept: the log is never read back). The
folds run on the control handler's single worker thread, in the order the groups were
written, so a stats reply queued on that worker after its batch landed sees exactly the log
up to there. A keeper that fails (or a log whose retention retired segments) stops for good:
requests then go to the full analysis.

Order: each group's events are folded sorted by time, groups in the order written, nothing
held back (as the broker's former live state did at each refresh). A single thread's events
arrive in time order, so its figures are those of the log's own fold. Across threads a
drain can ship one thread's events a drain later than another's: folded in arrival order,
such a pair can move the peak's instant, or (an allocation whose free by another thread
arrived first) count one unmatched free and one block still alive; ``memscope stats`` on
the finished log (which holds events back a second to reorder them) does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from memscope.eventlog.chunks import _DTYPES, _decode_into
from memscope.protocol.wire import MEMORY_COLUMNS

log = logging.getLogger("memscope.broker")
#: Groups waiting for the worker at most; beyond, the broker's thread waits (bounded memory).
MAX_PENDING = 64

Submit = Callable[..., "Future[Any]"]


class TotalsKeeper:
    """Running totals kept current as the broker writes (see the module docstring)."""

    def __init__(
        self, log_path: Path, submit: Submit, open_totals: Callable[[Path], Any] | None
    ) -> None:
        self.log_path = log_path
        self._submit = submit
        #: ``RunningTotals.open`` of the analyzers (handed in: see ``broker/analysis.py``).
        self._open = open_totals
        self.totals: Any = None  # RunningTotals, once started
        self.failed = False
        self._pending: list[Future[Any]] = []

    @property
    def active(self) -> bool:
        """Whether groups are folded as they are written."""
        return self.totals is not None and not self.failed

    @property
    def events(self) -> int:
        """The log's memory rows folded so far (the first ones, in log order)."""
        return int(self.totals.state.events) if self.totals is not None else 0

    def start(self) -> bool:
        """Fold the log written so far (on the caller's thread, once); whether it is kept."""
        if self.totals is not None or self.failed:
            return self.active
        if self._open is None:  # a broker started without the analyzers
            self.failed = True
            return False
        try:
            totals = self._open(self.log_path)
            if totals is None:
                self.failed = True
                return False
            totals.update()
        except Exception:  # noqa: BLE001 -- the full analysis answers instead
            log.exception("the running totals could not start; stats read the log")
            self.failed = True
            return False
        self.totals = totals
        return True

    def written(self, decoded: list[Any]) -> None:
        """Queue a group of batches just written to the log (the broker's thread)."""
        if not self.active:
            return
        memory = [d.memory for d in decoded if d.memory is not None]
        kept = [d.chunks for d in decoded if d.chunks is not None]
        processes = [d.rare["processes"] for d in decoded if "processes" in d.rare]
        self._pending = [f for f in self._pending if not f.done()]
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(0).result()
        self._pending.append(self._submit(self._fold, memory, kept, processes))

    def _fold(self, memory: list[Any], kept: list[Any], processes: list[Any]) -> None:
        if not self.active:
            return
        try:
            if memory:
                self.totals.take([part.batch() for part in memory], processes)
                processes = []
            if kept or processes:
                self.totals.take_columns(decode_parts(kept), processes)
        except Exception:  # noqa: BLE001 -- never stop the broker over the totals
            log.exception("folding the running totals failed; stats requests read the log")
            self.failed = True

    def stats(self, pid: Any) -> dict[str, Any] | None:
        """On the worker: the reply's stats of a full-mode ``pid``, None when not kept."""
        if not self.active or pid is None:
            return None
        try:
            if self.totals.mode(int(pid)) != "full":
                return None
            stats: dict[str, Any] = self.totals.stats(int(pid))
            stats.update(self.totals.seed_figures(int(pid)))  # MemoryStats' seed fields
            return stats
        except Exception:  # noqa: BLE001
            log.exception("the running totals failed; stats requests read the log")
            self.failed = True
            return None


def decode_parts(parts: list[Any]) -> dict[str, np.ndarray]:
    """The events of kept chunks, in order, as numpy columns (no arrow table is built).

    ``parts``: :class:`memscope.broker.decode.ChunkPart` s. Columns: ``pid`` and the wire's
    memory columns.
    """
    counts = [n for part in parts for n in part.counts]
    total = sum(counts)
    out = [np.empty(total, dtype) for dtype in _DTYPES]
    pid = np.empty(total, np.uint32)
    row = 0
    for part in parts:
        first = row
        for encoding, data, n in zip(part.encodings, part.data, part.counts, strict=True):
            if n:
                _decode_into(encoding, memoryview(data), n, out, row)
                row += n
        pid[first:row] = part.pid
    columns = dict(zip(MEMORY_COLUMNS, out, strict=True))
    columns["pid"] = pid
    return columns
