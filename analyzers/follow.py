"""``memscope analyze --follow``: keep the six files current while a log grows.

One long-lived process holds the log's analysis state (:class:`memscope.analyzers.state.
AnalysisState`). Each round it reopens the log's manifest, folds only the rows it has not
read yet (closed segments once, the open segment from where the last round stopped), and
when anything changed re-runs the analyzers over the state and rewrites their files
atomically -- a reader never sees a half-written file. A round with no new rows writes
nothing. The state is checkpointed every :data:`CHECKPOINT_EVERY_S` seconds and at the end,
so a restarted follower (or a later ``analyze``) continues from there.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from memscope.analyzers.common import AnalyzerOptions, log_time, now_iso
from memscope.analyzers.fold import FoldParams
from memscope.analyzers.live_totals import RunningTotals, full_mode_figures
from memscope.analyzers.memstats import process_stats
from memscope.analyzers.registry import select
from memscope.analyzers.runner import default_out_dir, fold_params
from memscope.analyzers.stacks import forget as forget_stacks
from memscope.analyzers.state import AnalysisState, state_dir, trimmed_without_checkpoint
from memscope.analyzers.views import _define, _new_connection, open_reader, use_state
from memscope.protocol.log_schema import TABLES

#: Seconds between two checkpoints of a follower's state.
CHECKPOINT_EVERY_S = 30.0
_MEMORY_TABLES = ("memory", "memory_chunks")


class Follower:
    """Incremental analysis of one growing log."""

    def __init__(
        self,
        log: str | Path,
        options: AnalyzerOptions,
        only: Sequence[str] | None = None,
        checkpoint: bool = True,
        tables: Sequence[str] | None = None,
    ) -> None:
        self.log = log
        self.options = options
        self.analyzers = select(only)
        self.params: FoldParams = fold_params(options)
        self.checkpoint = checkpoint
        #: The state tables registered each round (None: all, with the views over them).
        self.table_names = tables
        reader = open_reader(log)
        loaded = (
            AnalysisState.load(state_dir(reader), reader.log_id, self.params)
            if checkpoint
            else None
        )
        self.state = loaded or AnalysisState(self.params, log_id=reader.log_id)
        trimmed = None if loaded else trimmed_without_checkpoint(reader)
        if trimmed is not None:  # never save a partial state over the one holding the rest
            self.checkpoint = False
            self.state.problems.append(trimmed)
        self.con: duckdb.DuckDBPyConnection = _new_connection(None, None)
        self.rounds = 0
        self._signature: tuple[Any, ...] | None = None
        #: Whether the connection shows the state as last folded (see :meth:`refresh`).
        self.registered = False
        self._saved_at = time.monotonic()
        self._saved_events = self.state.events
        #: Wall-clock time of the newest log change folded (segment mtime); None before any.
        self.log_changed_at: float | None = None

    @property
    def events(self) -> int:
        """Memory events folded so far."""
        return int(self.state.events)

    def refresh(self, register: bool = True) -> Any | None:
        """Fold the rows added since the last call; the log's reader, or None if unchanged.

        ``register=False`` only folds: the connection's tables and views are brought up to
        date by the next call that registers (:attr:`registered` says whether they are).
        """
        # The memory tables are read through the state's cursor (new bytes only), never
        # scanned whole by the reader (which checks a table's segments on its first use).
        reader = open_reader(self.log)
        segments = [(s, s.path.stat()) for table in TABLES for s in reader.segments(table)]
        signature = tuple((s.path.name, s.closed, st.st_size) for s, st in segments)
        if signature == self._signature:
            if register and not self.registered:
                self._register(reader)
                return reader
            return None
        self._signature = signature
        # Taken before the fold reads: a write it also reads after this only errs the lag high.
        self.log_changed_at = max((st.st_mtime for _, st in segments), default=time.time())
        self.state.update(reader)
        self.registered = False
        if register:
            self._register(reader)
        if self.checkpoint and time.monotonic() - self._saved_at >= CHECKPOINT_EVERY_S:
            self.save(reader)
        return reader

    def _register(self, reader: Any) -> None:
        """Point the connection's tables and views at the log and the state now."""
        # no raw events: the analyzers read the state
        sources: dict[str, Any] = {
            name: reader.stored_dataset(name) for name in TABLES if name not in _MEMORY_TABLES
        }
        _define(self.con, sources)
        use_state(self.con, self.state.tables(self.table_names), views=self.table_names is None)
        forget_stacks(self.con)
        self.registered = True

    def save(self, reader: Any | None = None) -> None:
        """Checkpoint the state now (when it changed since the last checkpoint)."""
        if not self.checkpoint or self.state.events == self._saved_events:
            return
        reader = reader or open_reader(self.log)
        try:
            self.state.save(state_dir(reader))
        except OSError as exc:
            print(f"memscope: could not write the analysis checkpoint: {exc}", file=sys.stderr)
        self._saved_at = time.monotonic()
        self._saved_events = self.state.events

    def step(self) -> list[Path] | None:
        """One round: fold new rows, re-run the analyzers; None when nothing changed."""
        reader = self.refresh()
        if reader is None:
            return None
        options = replace(
            self.options,
            log_id=reader.log_id,
            generated_at=self.options.generated_at or log_time(reader.manifest) or now_iso(),
            log_problems=(
                *reader.known_problems,
                *(p for p in self.state.problems if p not in reader.known_problems),
            ),
        )
        written = []
        for analyzer in self.analyzers:
            analyzer(self.con, options)
            written.append(Path(options.out_dir or ".") / analyzer.file_name(options.base))
        self.rounds += 1
        return written


def follow(
    log: str | Path,
    out_dir: Path | None,
    *,
    base: str = "snapshot",
    only: Sequence[str] | None = None,
    interval: float = 2.0,
    quiet: bool = False,
    max_rounds: int | None = None,
    on_round: Callable[[Follower], None] | None = None,
) -> int:
    """Run rounds every ``interval`` seconds until interrupted (or ``max_rounds`` analyses).

    ``on_round`` is called with the follower after each round that found the log changed,
    on this thread (:meth:`memscope.analyzers.metrics.FollowerMetrics.publish`).
    """
    reader = open_reader(log)
    out = out_dir or default_out_dir(reader.path)
    follower = Follower(reader.path, AnalyzerOptions(out_dir=out, base=base), only)
    try:
        while max_rounds is None or follower.rounds < max_rounds:
            started = time.monotonic()
            written = follower.step()
            if written is not None and on_round is not None:
                on_round(follower)
            if written and not quiet:
                print(
                    f"memscope analyze --follow: round {follower.rounds}: "
                    f"{follower.events} memory events, "
                    f"{time.monotonic() - started:.1f}s -> {out}",
                    file=sys.stderr,
                )
            if max_rounds is not None and follower.rounds >= max_rounds:
                break
            # A round every ``interval`` (not a pause after each): a slow round lags no more.
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        follower.save()
    return 0


class LiveStats:
    """Exact :func:`memscope.analyzers.memstats.process_stats` of a growing log, cheaply.

    Keeps the analysis state between calls and folds only the memory rows written since the
    previous call (a broker answering ``stats`` requests, a live dashboard). It does not
    write checkpoints (the log's writer may be the caller).

    The totals of one full-mode process come from :class:`memscope.analyzers.live_totals.
    RunningTotals` (a fold of the counters alone, many times faster); the full analysis
    state is folded only once another request needs it (another mode, all processes), and
    :meth:`warm` keeps only what was asked for current.
    """

    def __init__(self, log: str | Path) -> None:
        # The totals read two small tables: the rest of the state is not exported.
        self._follower = Follower(
            log, AnalyzerOptions(), checkpoint=False, tables=("processes", "all")
        )
        reader = open_reader(log)
        if trimmed_without_checkpoint(reader) is not None:
            # retention retired segments only the checkpoint holds: start from it (read,
            # never written here), or the totals would miss them
            loaded = AnalysisState.load(state_dir(reader), reader.log_id, self._follower.params)
            if loaded is not None:
                self._follower.state = loaded
            # (the running totals cannot start from a checkpoint: the full state answers)
            self._totals: RunningTotals | None = None
        else:
            self._totals = RunningTotals(log)
        # Every event the caller sent counts now: nothing is held back for later ordering.
        self._follower.state.hold_ns = 0
        self._lock = threading.Lock()
        #: Whether a request needed the full state (then :meth:`warm` folds it too).
        self._full_wanted = False
        #: Rounds that folded new rows into the full state.
        self.refreshes = 0

    def warm(self) -> None:
        """Fold what the log gained since the last call (so the next :meth:`stats` is quick)."""
        with self._lock:
            if self._totals is not None:
                self._totals.update()
            if (self._full_wanted or self._totals is None) and self._follower.refresh(
                register=False
            ) is not None:
                self.refreshes += 1

    def stats(self, pid: int | None = None) -> dict[str, Any]:
        """The totals now, for one process or all (thread-safe: calls are serialized).

        A full-mode process's totals come straight from the fold's counters; the log's
        other tables (aggregated mode's folded pairs and measurements, sampled mode's rates)
        are read through DuckDB for the rest.
        """
        with self._lock:
            totals = self._totals
            if pid is not None and totals is not None:
                totals.update()
                if totals.mode(int(pid)) == "full":
                    return totals.stats(int(pid))
            self._full_wanted = True
            state = self._follower.state
            fast = pid is not None
            if self._follower.refresh(register=not fast) is not None:
                self.refreshes += 1
            if fast and state.modes.get(int(pid)) == "full":  # type: ignore[arg-type]
                return full_mode_stats(state, int(pid))  # type: ignore[arg-type]
            self._follower.refresh()  # registers what the fast path left unregistered
            return process_stats(self._follower.con, pid)

    def seed_figures(self, pid: int) -> dict[str, int]:
        """``MemoryStats``' ``peak_allocations``, ``leaked_allocations``, ``leaked_memory``.

        As of the last :meth:`stats` (call it first), from the fold's sites (one row per
        site: cheap): the blocks alive at the process's peak, and the blocks (and bytes)
        allocated and not freed so far -- what
        :func:`memscope.analyzers.seed_api.seed_figures` reports as leaked once the trace
        ended.
        """
        with self._lock:
            totals = self._totals
            if totals is not None and totals.mode(int(pid)) == "full":
                return totals.seed_figures(int(pid))
            return running_seed_figures(self._follower.state, pid)


def running_seed_figures(state: AnalysisState, pid: int) -> dict[str, int]:
    """:meth:`LiveStats.seed_figures` of a fold's state."""
    sites = state.fold.export(["sites"])["sites"]
    mine = sites["pid"] == pid
    return {
        "peak_allocations": int(sites["peak_blocks"][mine].sum()),
        "leaked_allocations": int(sites["live_blocks"][mine].sum()),
        "leaked_memory": int(sites["live_bytes"][mine].sum()),
    }


def full_mode_stats(state: AnalysisState, pid: int) -> dict[str, Any]:
    """``process_stats`` of one full-mode process, from the fold's counters alone.

    A full-mode process has no folded pairs or sampled blocks, so its figures are the fold's
    (:func:`memscope.analyzers.memstats.process_stats` gives the same for it).
    """
    table = state.fold.export(["processes"])["processes"]
    rows = np.flatnonzero(table["pid"] == pid)
    row = (
        {name: int(values[rows[0]]) for name, values in table.items() if values.dtype.kind in "iu"}
        if len(rows)
        else {}
    )
    return full_mode_figures(row)


#: log path -> its LiveStats (state kept between calls), for :func:`live_stats_for`.
_LIVE: dict[str, LiveStats] = {}
_LIVE_LOCK = threading.Lock()


def live_stats_for(log: str | Path) -> LiveStats:
    """The :class:`memscope.analyzers.follow.LiveStats` of ``log``, made once per log path.

    For a long-lived reader of a growing log (the broker's ``stats`` request): each
    ``.stats(pid)`` call folds only the memory rows written since the previous call.
    Calls on one log are serialized.
    """
    key = str(Path(log).resolve())
    with _LIVE_LOCK:
        live = _LIVE.get(key)
        if live is None:
            live = _LIVE[key] = LiveStats(log)
    return live


def forget_live(log: str | Path) -> None:
    """Drop the state :func:`live_stats_for` keeps for ``log`` (the log was closed)."""
    with _LIVE_LOCK:
        _LIVE.pop(str(Path(log).resolve()), None)
