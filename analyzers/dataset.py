"""The fleet dataset: a log's tables as Hive-partitioned Parquet that many logs merge into.

``memscope compact LOG --dataset ROOT`` writes every table of the log (the memory events
decoded, as in ``memory.parquet``) under::

    ROOT/<table>/host=<host>/date=<YYYY-MM-DD>/pid=<pid>/<log_id>-<unit>-<n>.parquet
    ROOT/_logs/<log_id>.json          # the source log: id, rows per table, problems

so the logs of any number of brokers (one per host, or sharded any way) go into one
``ROOT`` on shared storage and Spark, Trino, DuckDB or pyarrow read it as one table per
directory, pruning by host, date and pid. Each file is named after its log and its write
unit (a memory segment: ``memory_chunks-000012``; a small table whole: ``processes``), so logs
never overwrite one another, and writing a unit again (compacting a log again, or retention
archiving a segment an earlier compaction wrote) replaces exactly its own files: no row is
ever there twice. Memory events are written segment by segment, so a log retention trims
keeps its archived segments in the dataset (``log_retention_dataset``,
:mod:`memscope.eventlog.retention`) and a later compaction adds the segments kept.

Columns: the table's own (:mod:`memscope.protocol.log_schema`; ``pid`` comes from the path, as
Hive readers expect) plus ``log_id``. A pid is unique within a log, not across time on a
host, so queries join a process's rows on ``(log_id, pid)`` (or ``(host, pid)`` within a date).

Dates: ``ts_ns`` is the producer's monotonic clock. Each process's start row names its
producer (``host:pid:wall_ns``, the wall clock read at the same moment), which gives the
offset from monotonic to wall time; ``date`` is the UTC date of each row's ``ts_ns`` plus
that offset. Tables without a time (``frames``, ``stacks``) take the date their process
started. Rows of a process with no start row are dated by the log's creation (``host`` is
then null: Hive's default partition).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

#: The partition columns, outermost first.
PARTITION_KEYS = ("host", "date", "pid")
_NS_PER_DAY = 86_400 * 1_000_000_000
#: Tables whose rows have no time of their own: dated by their process's start.
_UNTIMED = ("frames", "stacks")


@dataclass(frozen=True)
class _Clocks:
    """Per pid: its host and the offset from its monotonic clock to the wall clock (ns)."""

    hosts: dict[int, str]
    offsets: dict[int, int]
    starts: dict[int, int]  # wall-clock start (ns)
    fallback_wall_ns: int

    @classmethod
    def of(cls, processes: pa.Table, created_ns: int) -> _Clocks:
        hosts: dict[int, str] = {}
        offsets: dict[int, int] = {}
        starts: dict[int, int] = {}
        for row in processes.select(["pid", "ts_ns", "event", "host", "producer"]).to_pylist():
            pid = int(row["pid"])
            if row["host"] is not None:
                hosts.setdefault(pid, str(row["host"]))
            if row["event"] != "start" or pid in offsets:
                continue
            wall = _producer_wall_ns(row["producer"])
            if wall is not None and row["ts_ns"] is not None:
                offsets[pid] = wall - int(row["ts_ns"])
                starts[pid] = wall
        return cls(hosts, offsets, starts, created_ns)

    def annotate(self, table: str, batch: pa.RecordBatch, log_id: str) -> pa.RecordBatch:
        """``batch`` with ``host``, ``date`` and ``log_id`` columns added."""
        pids = (
            pc.fill_null(batch.column("pid"), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        )  # a row without a pid (an unidentified producer's ingest row) is dated
        unique, inverse = np.unique(pids, return_inverse=True)
        host_of = [self.hosts.get(int(p)) for p in unique]
        hosts = pa.DictionaryArray.from_arrays(
            pa.array(inverse.astype(np.int32)), pa.array(host_of, pa.string())
        )
        if table in _UNTIMED or "ts_ns" not in batch.schema.names:
            start_of = np.array(
                [self.starts.get(int(p), self.fallback_wall_ns) for p in unique], dtype=np.int64
            )
            wall = start_of[inverse]
        else:
            offset_of = np.array([self.offsets.get(int(p), 0) for p in unique], dtype=np.int64)
            known = np.array([int(p) in self.offsets for p in unique])[inverse]
            ts = (
                pc.fill_null(batch.column("ts_ns"), 0)
                .to_numpy(zero_copy_only=False)
                .astype(np.int64)
            )
            wall = np.where(known, ts + offset_of[inverse], self.fallback_wall_ns)
        days = (wall // _NS_PER_DAY).astype(np.int32)
        columns, names = list(batch.columns), list(batch.schema.names)
        if "host" not in names:  # ``processes`` has its own (the same value)
            columns.append(hosts.cast(pa.string()))
            names.append("host")
        columns += [
            pa.array(days, pa.date32()),
            pa.array(np.full(batch.num_rows, log_id, dtype=object), pa.string()),
        ]
        names += ["date", "log_id"]
        return pa.RecordBatch.from_arrays(columns, names=names)


def _producer_wall_ns(producer: Any) -> int | None:
    """The wall-clock start in a producer id ``host:pid:wall_ns`` (None if not of that form)."""
    if not isinstance(producer, str):
        return None
    try:
        return int(producer.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def _partitioning() -> ds.Partitioning:
    return ds.partitioning(
        pa.schema([("host", pa.string()), ("date", pa.date32()), ("pid", pa.uint32())]),
        flavor="hive",
    )


def _own_files(root: Path, log_id: str) -> dict[str, list[Path]]:
    """The files this log wrote under ``root``, by their write unit (``<table>-<NNNNNN>``)."""
    found: dict[str, list[Path]] = {}
    prefix = f"{log_id}-"
    for path in root.rglob(f"{log_id}-*.parquet"):
        unit = path.name.removeprefix(prefix).rsplit("-", 1)[0]
        found.setdefault(unit, []).append(path)
    return found


def write_unit(
    root: Path,
    table: str,
    unit: str,
    batches: Iterator[pa.RecordBatch],
    clocks: _Clocks,
    log_id: str,
    old: dict[str, list[Path]] | None = None,
) -> int:
    """Write one unit of rows (a memory segment, or a small table whole) into ``root/table``.

    Its files are named ``<log_id>-<unit>-<i>.parquet``: writing the same unit again (a
    segment that grew, a log compacted again, a segment archived at retirement after an
    earlier compaction) replaces them, so rows are never in the dataset twice.
    """
    from memscope.protocol.log_schema import TABLES

    schema = TABLES[table]
    out_schema = schema if "host" in schema.names else schema.append(pa.field("host", pa.string()))
    out_schema = out_schema.append(pa.field("date", pa.date32())).append(
        pa.field("log_id", pa.string())
    )
    rows = 0

    def annotated() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for batch in batches:
            if batch.num_rows:
                rows += batch.num_rows
                yield clocks.annotate(table, batch, log_id)

    for path in (old if old is not None else _own_files(root / table, log_id)).get(unit, []):
        path.unlink(missing_ok=True)
    ds.write_dataset(
        annotated(),
        str(root / table),
        schema=out_schema,
        format="parquet",
        partitioning=_partitioning(),
        basename_template=f"{log_id}-{unit}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
        max_rows_per_group=1 << 20,
        min_rows_per_group=1 << 16,
    )
    return rows


def _segment_events(segment: Any, problems: list[str]) -> Iterator[pa.RecordBatch]:
    """The memory events of one ``memory`` or ``memory_chunks`` segment."""
    from memscope.eventlog.chunks import decode_chunk_batches
    from memscope.eventlog.segments import read_segment
    from memscope.protocol.log_schema import TABLES

    batches = read_segment(segment.path, TABLES[segment.table]).table.to_batches()
    if segment.table == "memory":
        yield from batches
    else:
        yield from decode_chunk_batches(batches, on_problem=problems.append)


#: The tables whose rows are written per segment (into ``memory``); the others whole.
_EVENT_TABLES = ("memory", "memory_chunks")


class DatasetWriter:
    """Writes one log into a fleet dataset: its small tables, and its memory segments."""

    def __init__(self, reader: Any, root: str | os.PathLike[str]) -> None:
        self.reader = reader
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_id = str(reader.log_id)
        created = reader.manifest.get("created_ns")
        self.clocks = _Clocks.of(
            reader.table("processes"), int(created) if isinstance(created, int) else 0
        )
        self.counts: dict[str, int] = {}
        self.problems: list[str] = []
        self._old = _own_files(self.root / "memory", self.log_id)

    def small_tables(self) -> None:
        """Every table but the memory events, each written whole (they are small)."""
        from memscope.protocol.log_schema import TABLES

        for name in TABLES:
            if name not in _EVENT_TABLES:
                self.counts[name] = write_unit(
                    self.root,
                    name,
                    name,
                    iter(self.reader.dataset(name).to_batches()),
                    self.clocks,
                    self.log_id,
                )

    def segments(self, only: set[str] | None = None) -> list[str]:
        """Write the memory segments (``only``: these ``table/file`` names); return them."""
        written = []
        for table in _EVENT_TABLES:
            for segment in self.reader.segments(table):
                key = f"{table}/{segment.path.name}"
                if only is not None and key not in only:
                    continue
                unit = segment.path.name.removesuffix(".arrow")
                self.counts["memory"] = self.counts.get("memory", 0) + write_unit(
                    self.root,
                    "memory",
                    unit,
                    _segment_events(segment, self.problems),
                    self.clocks,
                    self.log_id,
                    self._old,
                )
                written.append(key)
        return written

    def finish(self) -> dict[str, Any]:
        """Record the log in ``ROOT/_logs/<log_id>.json``; return what it holds."""
        info = {
            "source_log_id": self.log_id,
            "tables": self.counts,
            "hosts": sorted(set(self.clocks.hosts.values())),
            "retired": self.reader.manifest.get("retired"),
            "problems": [*getattr(self.reader, "problems", []), *self.problems],
        }
        logs = self.root / "_logs"
        logs.mkdir(exist_ok=True)
        tmp = logs / f".{self.log_id}.json.tmp"
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(logs / f"{self.log_id}.json")
        return {**info, "out_dir": str(self.root)}


def write_dataset(reader: Any, root: str | os.PathLike[str]) -> dict[str, Any]:
    """Write ``reader``'s log into the fleet dataset at ``root``; return what was written."""
    writer = DatasetWriter(reader, root)
    writer.small_tables()
    writer.counts["memory"] = 0
    writer.segments()
    return writer.finish()


def archive_segments(
    log_dir: str | os.PathLike[str], root: str | os.PathLike[str], files: set[str]
) -> list[str]:
    """Write these memory segments of a log (and its small tables) into the dataset.

    Retention calls it before it retires them (``log_retention_dataset``), so the raw
    events leave the broker's disk for shared storage instead of being lost.
    """
    from memscope.eventlog.log import open_log

    writer = DatasetWriter(open_log(Path(log_dir)), root)
    writer.small_tables()
    written = writer.segments(files)
    writer.finish()
    return written


# -- Reading it back: SQL that Spark SQL and DuckDB both run as written ---------------------
# Views expected: ``memory``, ``stacks``, ``frames`` over ``ROOT/<table>`` (Hive partitions).
# Kinds: 0 alloc, 1 calloc, 2 realloc, 3 free (memscope.protocol.wire). Full-mode processes
# only: a sampled process's figures need its weights, an aggregated one's folded pairs.

#: Every block start and end as one row; an end of a realloc's old block comes first (sub 0).
_BLOCK_EVENTS = """
ev AS (
  SELECT log_id, host, pid, ts_ns, seq, 1 AS sub, address AS addr, size, 1 AS is_start
  FROM memory WHERE kind IN (0, 1, 2) AND address <> 0
  UNION ALL
  SELECT log_id, host, pid, ts_ns, seq, 1 AS sub, address AS addr, 0 AS size, 0 AS is_start
  FROM memory WHERE kind = 3 AND address <> 0
  UNION ALL
  SELECT log_id, host, pid, ts_ns, seq, 0 AS sub, old_address AS addr, 0 AS size, 0 AS is_start
  FROM memory WHERE kind = 2 AND old_address <> 0
),
paired AS (
  SELECT log_id, host, pid, ts_ns, seq, sub, is_start, size,
         lag(is_start) OVER (PARTITION BY log_id, pid, addr ORDER BY ts_ns, seq, sub)
           AS prev_start,
         lag(size) OVER (PARTITION BY log_id, pid, addr ORDER BY ts_ns, seq, sub) AS prev_size
  FROM ev
),
delta AS (
  -- a start adds its size (and ends a block still live at that address: reused);
  -- an end removes the block it matches, if the address's last event started one
  SELECT log_id, host, pid, ts_ns, seq, sub,
         CASE WHEN is_start = 1 THEN size ELSE 0 END
           - CASE WHEN prev_start = 1 THEN prev_size ELSE 0 END AS change
  FROM paired
)"""

#: Peak live bytes per process (as ``memscope report``'s ``peak_memory`` of a full-mode one).
PEAK_SQL = (
    "WITH"
    + _BLOCK_EVENTS
    + """,
live AS (
  SELECT log_id, host, pid,
         sum(change) OVER (PARTITION BY log_id, pid ORDER BY ts_ns, seq, sub
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS live_bytes
  FROM delta
)
SELECT log_id, host, pid, max(live_bytes) AS peak_bytes
FROM live GROUP BY log_id, host, pid ORDER BY log_id, pid"""
)

#: Each process's top allocation sites by bytes allocated, with the innermost frame.
TOP_SITES_SQL = """
WITH sites AS (
  SELECT log_id, host, pid, stack_id, count(*) AS allocations, sum(size) AS bytes_allocated
  FROM memory WHERE kind IN (0, 1, 2) AND address <> 0
  GROUP BY log_id, host, pid, stack_id
),
ranked AS (
  SELECT log_id, host, pid, stack_id, allocations, bytes_allocated,
         row_number() OVER (PARTITION BY log_id, pid
                            ORDER BY bytes_allocated DESC, allocations DESC, stack_id) AS site_rank
  FROM sites
)
SELECT r.log_id, r.host, r.pid, r.site_rank, r.stack_id, r.allocations, r.bytes_allocated,
       f.function, f.filename, f.lineno
FROM ranked r
LEFT JOIN stacks s ON s.log_id = r.log_id AND s.pid = r.pid AND s.stack_id = r.stack_id
LEFT JOIN frames f ON f.log_id = r.log_id AND f.pid = r.pid AND f.frame_id = s.frame_id
WHERE r.site_rank <= 10
ORDER BY r.log_id, r.pid, r.site_rank"""
