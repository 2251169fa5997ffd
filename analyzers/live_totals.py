"""The running totals of a growing log: ``Tracker.get_stats()`` of a full-mode process, fast.

A :class:`RunningTotals` reads the log's new memory rows exactly as the analysis state does
(:meth:`memscope.analyzers.state.AnalysisState.update`, nothing held back) but folds them
into :class:`memscope.analyzers._statfold.StatsFold`: per process, only the live blocks'
sizes and the counters ``get_stats`` reports. It reads six of the ten memory columns and
folds an event in a few ns (the full fold takes about a hundred), so a broker can keep it
current while a program allocates, and a request folds only what landed since.

A broker keeps one current without reading its log back: :meth:`RunningTotals.take` folds
each group of batches as it writes them (:mod:`memscope.broker.control`), after one
:meth:`RunningTotals.update` from the log at the first request.

A full-mode process's figures are the full fold's (``tests/unit/test_statfold.py``); other modes
(folded pairs, sampled weights, in-process measurements) need the full state
(:class:`memscope.analyzers.follow.LiveStats` falls back to it).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa

from memscope.analyzers._statfold import StatsFold
from memscope.analyzers.memstats import counter_figures
from memscope.analyzers.state import (
    WINDOW_ROWS,
    AnalysisState,
    trimmed_without_checkpoint,
    windows,
)
from memscope.analyzers.views import open_reader

#: The memory columns :meth:`StatsFold.feed` takes, in order.
FEED_COLUMNS = ("pid", "ts_ns", "kind", "address", "old_address", "size")


class RunningTotals:
    """The light fold of one log and the cursor of what it read (not thread-safe)."""

    def __init__(self, log: str | Path) -> None:
        self.log = log
        self.fold = StatsFold()
        self.state = AnalysisState(fold=cast(Any, self.fold), log_id=open_reader(log).log_id)
        self.state.hold_ns = 0  # every event the caller sent counts now
        self.state.feed_names = FEED_COLUMNS

    @classmethod
    def open(cls, log: str | Path) -> RunningTotals | None:
        """Totals of ``log`` folded from its start; None when the log cannot give them.

        (Its retention retired segments that only its analysis checkpoint holds.)
        """
        if trimmed_without_checkpoint(open_reader(log)) is not None:
            return None
        return cls(log)

    def update(self) -> int:
        """Fold the memory rows written since the last call; how many were folded."""
        return self.state.update(open_reader(self.log))

    def take(
        self, memory: Iterable[pa.RecordBatch], processes: Iterable[pa.RecordBatch] = ()
    ) -> int:
        """Fold batches the caller writes to the log now (instead of reading them back).

        ``memory`` table batches are folded sorted by time as the log's reader would, and
        ``processes`` rows give the modes. Returns the memory events folded.
        """
        for batch in processes:
            self.state.register_processes(batch)
        folded = 0
        for window in windows(memory, WINDOW_ROWS, names=FEED_COLUMNS):
            self.fold.feed(*(window[name] for name in FEED_COLUMNS))
            folded += len(window["pid"])
        self.state.events += folded
        return folded

    def take_columns(
        self, columns: dict[str, np.ndarray], processes: Iterable[pa.RecordBatch] = ()
    ) -> int:
        """:meth:`take` of one window given as numpy columns, in log order.

        ``columns`` holds at least :data:`FEED_COLUMNS`; they are folded sorted by time
        (stable: ties keep log order).
        """
        for batch in processes:
            self.state.register_processes(batch)
        ts = columns["ts_ns"]
        if len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()):
            order = np.argsort(ts, kind="stable")
            self.fold.feed(*(columns[name][order] for name in FEED_COLUMNS))
        else:
            self.fold.feed(*(columns[name] for name in FEED_COLUMNS))
        self.state.events += len(ts)
        return len(ts)

    def mode(self, pid: int) -> str | None:
        """The capture mode of ``pid`` (from its ``processes`` rows), None if unknown yet."""
        return self.state.modes.get(int(pid))

    def stats(self, pid: int) -> dict[str, Any]:
        """``process_stats(con, pid)`` of a full-mode process, from the counters alone."""
        return full_mode_figures(self.fold.totals(int(pid)) or {})

    def seed_figures(self, pid: int) -> dict[str, int]:
        """``MemoryStats``' ``peak_allocations`` and the leaks so far of a full-mode process.

        The blocks alive when the peak was reached, and the blocks (bytes) not freed yet:
        what the full fold's per-site counters sum to.
        """
        row = self.fold.totals(int(pid)) or {}
        return {
            "peak_allocations": int(row.get("peak_blocks", 0)),
            "leaked_allocations": int(row.get("live_blocks", 0)),
            "leaked_memory": int(row.get("live_bytes", 0)),
        }


def full_mode_figures(row: dict[str, int]) -> dict[str, Any]:
    """``process_stats`` of one full-mode process from its fold counters.

    ``row`` holds ``processes`` columns of :mod:`memscope.analyzers.fold` (a missing one is 0).
    """

    def get(name: str) -> int:
        return int(row.get(name, 0))

    peak = get("peak_bytes")
    return counter_figures(get, peak, get("peak_ts_ns") if peak else None) | {"modes": ["full"]}
