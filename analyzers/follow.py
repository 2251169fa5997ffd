"""``memscope analyze --follow``: keep the six files current while a log grows.

How it stays incremental: one long-lived process holds the block-matching state of
:class:`memscope.analyzers.blocks.BlockMatcher` (finished blocks, open blocks, notable ends
and the last events of every address). Each round it reopens the log's manifest and feeds
the matcher only memory rows it has not read yet:

* a segment closed when first seen is streamed once, batch by batch, and never again;
* the segment still being written is read up to its last complete batch, and only the rows
  after the ones already matched are fed (the next round continues from there; when the
  segment is closed, its remaining rows are fed and it is done);
* ``memory_chunks`` segments (events the broker stored as the producers encoded them) are
  followed the same way by chunk rows; only the new rows are decoded and fed to the matcher.
  The follower keeps no raw memory events: the analyzers read only the matched block state,
  so ``raw_memory`` (the ``events`` view) is empty on its connection.

The small tables (processes, threads, variables, stacks, scopes, FFI, counters) are
re-registered each round as lazy datasets. The analyzers then run over the accumulated state
(already matched, in memory) and rewrite their files atomically -- a reader never sees a
half-written file. A round with no new rows in any table writes nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from memscope.analyzers import select
from memscope.analyzers._common import AnalyzerOptions, log_time, now_iso
from memscope.analyzers.blocks import BlockMatcher
from memscope.analyzers.views import (
    _READERS,
    _define,
    _new_connection,
    freeze,
    open_reader,
)
from memscope.broker.chunks import decode_chunk_batches
from memscope.broker.schema import TABLES


@dataclass
class _Progress:
    """What the follower has read: rows per memory segment, closed segments finished."""

    rows: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    signature: tuple[Any, ...] = ()


def _segment_batches(segment: Any, skip: int) -> Iterator[pa.RecordBatch]:
    """Record batches of one memory segment after its first ``skip`` rows."""
    if segment.closed:
        try:
            with pa.memory_map(str(segment.path)) as source:
                reader = ipc.open_file(source)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                yield from _skip(batches, skip)
            return
        except (pa.ArrowInvalid, OSError):
            pass  # damaged: fall back to reading its complete batches as a stream
    yield from _skip(iter(segment.read().to_batches()), skip)


def _skip(batches: Iterator[pa.RecordBatch], skip: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield batch.slice(skip) if skip else batch
        skip = 0


class Follower:
    """Incremental analysis of one growing log."""

    def __init__(self, log: str | Path, options: AnalyzerOptions,
                 only: Sequence[str] | None = None) -> None:
        self.log = log
        self.options = options
        self.analyzers = select(only)
        self.con = _new_connection(None, None)
        self.matcher = BlockMatcher(self.con)
        self.read = _Progress()
        self.rounds = 0
        #: Chunks that did not decode, over every round (each round opens a new reader and
        #: decodes only new rows, so its reader names only that round's).
        self.decode_problems: list[str] = []

    def _new_rows(self, reader: Any, table: str) -> Iterator[pa.RecordBatch]:
        for segment in reader.segments(table):
            key = segment.path.name
            if key in self.read.finished:
                continue
            before = self.read.rows.get(key, 0)
            count = before
            for batch in _segment_batches(segment, before):
                count += batch.num_rows
                yield batch
            self.read.rows[key] = count
            if segment.closed:
                self.read.finished.add(key)

    def _new_memory(self, reader: Any) -> Iterator[pa.RecordBatch]:
        yield from self._new_rows(reader, "memory")
        yield from decode_chunk_batches(self._new_rows(reader, "memory_chunks"),
                                        on_problem=self.decode_problems.append)

    def refresh(self) -> Any | None:
        """Feed the rows added since the last call; the log's reader, or None if unchanged."""
        reader = open_reader(self.log)
        signature = tuple(
            (s.path.name, s.closed, s.path.stat().st_size)
            for table in TABLES for s in reader.segments(table)
        )
        if signature == self.read.signature:
            return None
        self.read.signature = signature
        sources: dict[str, Any] = {name: reader.stored_dataset(name) for name in TABLES}
        sources["memory"] = None  # no raw events: the analyzers read the block state
        _define(self.con, sources)
        _READERS[self.con] = reader  # (what a rare look-up of raw events reads: security's)
        self.matcher.feed(self._new_memory(reader))
        self.matcher.point_views()
        freeze(self.con)
        return reader

    def step(self) -> list[Path] | None:
        """One round: feed new rows, re-run the analyzers; None when nothing changed."""
        reader = self.refresh()
        if reader is None:
            return None
        options = replace(
            self.options, log_id=reader.log_id,
            generated_at=self.options.generated_at or log_time(reader.manifest) or now_iso(),
            log_problems=(*reader.problems, *self.decode_problems),
        )
        written = []
        for analyzer in self.analyzers:
            analyzer(self.con, options)
            written.append(Path(options.out_dir or ".") / analyzer.file_name(options.base))
        self.rounds += 1
        return written


def follow(
    log: str | Path, out_dir: Path | None, *, base: str = "snapshot",
    only: Sequence[str] | None = None, interval: float = 2.0, quiet: bool = False,
    max_rounds: int | None = None,
) -> int:
    """Run rounds every ``interval`` seconds until interrupted (or ``max_rounds`` analyses)."""
    from memscope.analyzers.runner import default_out_dir

    reader = open_reader(log)
    out = out_dir or default_out_dir(reader.path)
    follower = Follower(reader.path, AnalyzerOptions(out_dir=out, base=base), only)
    try:
        while max_rounds is None or follower.rounds < max_rounds:
            started = time.monotonic()
            written = follower.step()
            if written and not quiet:
                print(f"memscope analyze --follow: round {follower.rounds}: "
                      f"{follower.matcher.rows_matched} memory events, "
                      f"{time.monotonic() - started:.1f}s -> {out}", file=sys.stderr)
            if max_rounds is not None and follower.rounds >= max_rounds:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    return 0


class LiveStats:
    """Exact :func:`memscope.analyzers.memstats.process_stats` of a growing log, cheaply.

    Keeps the block-matching state between calls and feeds it only the memory rows written
    since the previous call (a broker answering ``stats`` requests, a live dashboard).
    """

    def __init__(self, log: str | Path) -> None:
        self._follower = Follower(log, AnalyzerOptions())
        self._lock = threading.Lock()
        self.refreshes = 0

    def stats(self, pid: int | None = None) -> dict[str, Any]:
        """The totals now, for one process or all (thread-safe: calls are serialized)."""
        from memscope.analyzers.memstats import process_stats

        with self._lock:
            if self._follower.refresh() is not None:
                self.refreshes += 1
            return process_stats(self._follower.con, pid)
