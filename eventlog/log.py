"""The event log on disk: :class:`LogWriter` appends tables, :func:`open_log` reads them.

The layout is documented in :mod:`memscope.protocol.log_schema`. The manifest (``manifest.json``)
is rewritten atomically (write to a temporary file, rename) whenever a segment is opened or
closed and on every :meth:`LogWriter.flush`; besides the documented keys it carries:

* ``writer``: ``{"pid", "host", "state"}`` with ``state`` ``"open"`` while a writer has the log
  open and ``"closed"`` after a clean close, so readers can tell a live log from a crashed one;
* ``state``: an opaque map owned by the writer's user (the broker keeps its per-producer
  sequence state there so that a restarted broker drops replayed duplicates).

Memory events live in two tables (``memory``, columnar, and ``memory_chunks``, the producers'
encoded chunks; see :mod:`memscope.protocol.log_schema`). :meth:`LogReader.memory_batches` streams
all of them as decoded ``memory`` record batches in log order; every reader of memory events
uses it (or :meth:`LogReader.memory_reader`).

Example::

    log = open_log("MemoryAnalysis/run-1")          # the run directory or its events/ dir
    for batch in log.memory_batches():              # pyarrow RecordBatches, MEMORY schema
        ...
    for problem in log.problems:
        print(problem)
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from memscope.config import Settings
from memscope.eventlog import faults as _faults
from memscope.eventlog import integrity
from memscope.eventlog import segments as seg
from memscope.protocol.log_schema import (
    LOG_FORMAT_NAME,
    LOG_FORMAT_VERSION,
    MEMORY,
    READABLE_VERSIONS,
    TABLES,
)

# pyarrow.dataset (~0.07 s to import) only for readers: a broker that only writes (the
# embedded one of every traced program) starts without it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import pyarrow.dataset as ds

MANIFEST = "manifest.json"
_SUFFIX = ".arrow"


class LogError(Exception):
    """A directory that is not a readable memscope log; the message says why."""


def _events_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` if it holds a manifest, else ``path/events`` if that does."""
    root = Path(path)
    if (root / MANIFEST).is_file():
        return root
    if (root / "events" / MANIFEST).is_file():
        return root / "events"
    raise LogError(f"{root}: no {MANIFEST} here or in {root / 'events'}; not a memscope log")


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LogError(f"{path}: cannot read the manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != LOG_FORMAT_NAME:
        raise LogError(f"{path}: not a {LOG_FORMAT_NAME} manifest")
    version = manifest.get("version")
    if version not in READABLE_VERSIONS:
        raise LogError(
            f"{path}: log format version {version}; this memscope reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    return manifest


def _write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    path = directory / MANIFEST
    tmp = directory / (MANIFEST + ".tmp")
    try:
        # one line per top-level key: readable, but the broker's state (up to
        # ingest.MAX_PRODUCERS producers) costs no indentation
        text = ",\n".join(
            json.dumps({k: v}, separators=(",", ":"))[1:-1] for k, v in sorted(manifest.items())
        )
        tmp.write_text("{\n" + text + "\n}\n")
        _faults.check()
        os.replace(tmp, path)
    except OSError:  # a full disk: the old manifest stays, and no half-written temporary
        tmp.unlink(missing_ok=True)
        raise


def _segment_number(name: str) -> int:
    try:
        return int(name.rsplit("-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return -1


class LogWriter:
    """Appends record batches of the log's tables to rotating segment files.

    ``path`` is the log directory (``<run>/events``); it is created if missing. An existing
    log is continued: new segments are numbered after the existing ones and segments that
    were left open by a crashed writer are closed by :meth:`recover` (the broker calls it with
    the byte offsets its journal proved committed).
    """

    def __init__(self, path: str | os.PathLike[str], settings: Settings | None = None) -> None:
        self.path = Path(path)
        self.settings = settings or Settings()
        self.path.mkdir(parents=True, exist_ok=True)
        self._options = seg.ipc_options(self.settings.log_compression)
        self._chunk_options = seg.ipc_options(self.settings.log_chunk_compression)
        self._open: dict[str, seg.SegmentWriter] = {}
        self._closed = False
        if (self.path / MANIFEST).exists():
            self.manifest = _read_manifest(self.path)
            writer = self.manifest.get("writer", {})
            if _writer_alive(writer) and writer.get("pid") != os.getpid():
                raise LogError(
                    f"{self.path}: the log is being written by process {writer.get('pid')}; "
                    "stop that broker first or choose another log directory"
                )
        else:
            self.manifest = {
                "format": LOG_FORMAT_NAME,
                "version": LOG_FORMAT_VERSION,
                "log_id": uuid.uuid4().hex,
                "created_ns": time.time_ns(),
                "segments": [],
                "state": {},
            }
        # A continued version 1 log may now get memory_chunks: older readers must refuse it.
        self.manifest["version"] = LOG_FORMAT_VERSION
        self.manifest["writer"] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "state": "open",
        }
        self.manifest.setdefault("state", {})
        self._next = self._next_numbers()
        self._write_manifest()

    @property
    def log_id(self) -> str:
        """The log's unique id."""
        return str(self.manifest["log_id"])

    @property
    def state(self) -> dict[str, Any]:
        """The user's opaque state kept in the manifest (JSON-serializable values only)."""
        state: dict[str, Any] = self.manifest["state"]
        return state

    def _next_numbers(self) -> dict[str, int]:
        numbers = {name: 0 for name in TABLES}
        for entry in self.manifest["segments"]:
            table = entry["table"]
            numbers[table] = max(numbers[table], _segment_number(entry["file"]) + 1)
        for table in TABLES:
            for file in (self.path / table).glob(f"{table}-*{_SUFFIX}"):
                numbers[table] = max(numbers[table], _segment_number(file.name) + 1)
        return numbers

    def _entry(self, relative: str) -> dict[str, Any] | None:
        for entry in self.manifest["segments"]:
            if entry["file"] == relative:
                return entry
        return None

    # -- recovery ---------------------------------------------------------------------------

    def unclosed_segments(self) -> list[str]:
        """Segment files (relative paths) left open by an earlier writer."""
        listed = {e["file"]: e for e in self.manifest["segments"]}
        found: list[str] = []
        for table in TABLES:
            for file in sorted((self.path / table).glob(f"{table}-*{_SUFFIX}")):
                relative = f"{table}/{file.name}"
                entry = listed.get(relative)
                if entry is None or not entry.get("closed"):
                    found.append(relative)
        return found

    def recover(self, committed: Mapping[str, int] | None = None) -> list[str]:
        """Close segments left open by a crashed writer; return one note per segment.

        ``committed`` maps a segment's relative path to the byte offset after its last
        committed batch; bytes beyond it are cut off. Without an entry every complete batch
        is kept.
        """
        notes: list[str] = []
        for relative in self.unclosed_segments():
            table = relative.split("/", 1)[0]
            path = self.path / relative
            size = path.stat().st_size
            schema = seg.segment_schema(TABLES[table], table, self.log_id)
            if committed is not None and relative in committed:
                seg.committed_prefix(path, committed[relative])
            elif committed is not None:
                seg.committed_prefix(path, 0)
            result = seg.read_segment(path, TABLES[table]) if path.stat().st_size else None
            table_data = result.table if result else TABLES[table].empty_table()
            new_size = seg.rewrite_closed(path, table_data, schema, self._options_for(table))
            entry = self._entry(relative)
            if entry is None:
                entry = {"table": table, "file": relative, "created_ns": time.time_ns()}
                self.manifest["segments"].append(entry)
            entry.update(
                rows=table_data.num_rows,
                events=_chunk_events(table, table_data),
                batches=result.batches if result else 0,
                bytes=new_size,
                closed=True,
                recovered=True,
                closed_ns=time.time_ns(),
            )
            notes.append(
                f"{relative}: recovered {entry['batches']} committed batches "
                f"({table_data.num_rows} rows) from {size} bytes left by an unclean stop"
            )
        self._write_manifest()
        return notes

    # -- writing ----------------------------------------------------------------------------

    def _conform(self, table: str, data: pa.RecordBatch | pa.Table) -> list[pa.RecordBatch]:
        schema = TABLES.get(table)
        if schema is None:
            raise ValueError(f"unknown table {table!r}; the log has {', '.join(TABLES)}")
        if not data.schema.remove_metadata().equals(schema):
            missing = [name for name in schema.names if name not in data.schema.names]
            if missing:
                raise ValueError(f"{table}: data lacks column(s) {', '.join(missing)}")
            data = data.select(schema.names).cast(schema)
        if isinstance(data, pa.Table):
            return [b for b in data.combine_chunks().to_batches() if b.num_rows]
        return [data] if data.num_rows else []

    def _options_for(self, table: str) -> ipc.IpcWriteOptions:
        return self._chunk_options if table == "memory_chunks" else self._options

    def _writer(self, table: str) -> seg.SegmentWriter:
        writer = self._open.get(table)
        if writer is not None:
            return writer
        number = self._next[table]
        self._next[table] = number + 1
        relative = f"{table}/{table}-{number:06d}{_SUFFIX}"
        (self.path / table).mkdir(exist_ok=True)
        schema = seg.segment_schema(TABLES[table], table, self.log_id)
        writer = seg.SegmentWriter(self.path / relative, schema, self._options_for(table))
        self._open[table] = writer
        self.manifest["segments"].append(
            {
                "table": table,
                "file": relative,
                "rows": 0,
                "batches": 0,
                "bytes": 0,
                "closed": False,
                "created_ns": writer.created_ns,
            }
        )
        self._write_manifest()
        return writer

    def append(self, table: str, data: pa.RecordBatch | pa.Table) -> tuple[str, int]:
        """Append rows to ``table``; return (segment relative path, offset after the rows).

        Raises:
            ValueError: unknown table, or data whose columns do not fit the table's schema.
        """
        if self._closed:
            raise ValueError("the log writer is closed")
        batches = self._conform(table, data)
        writer = self._writer(table)
        offset = writer.nbytes
        for batch in batches:
            offset = writer.write(batch)
            writer.events += _chunk_events(table, batch)
        relative = writer.path.relative_to(self.path).as_posix()
        if writer.nbytes >= self.settings.segment_max_bytes:
            self._close_segment(table)
        return relative, offset

    def rotate_due(self, now: float | None = None) -> list[str]:
        """Close segments older than ``segment_max_age_s``; return the tables rotated."""
        now = time.monotonic() if now is None else now
        due = [
            table
            for table, writer in self._open.items()
            if now - writer.created_mono >= self.settings.segment_max_age_s
        ]
        for table in due:
            self._close_segment(table, write=False)
        if due:
            self._write_manifest()
        return due

    def _close_segment(self, table: str, write: bool = True) -> None:
        writer = self._open.pop(table)
        size = writer.close()
        entry = self._entry(writer.path.relative_to(self.path).as_posix())
        if entry is not None:
            entry.update(
                rows=writer.rows,
                events=writer.events,
                batches=writer.batches,
                bytes=size,
                closed=True,
                closed_ns=time.time_ns(),
            )
        if write:
            self._write_manifest()

    def flush(self, sync: bool = True) -> None:
        """Record current row counts in the manifest (and fsync the open segments)."""
        for writer in self._open.values():
            if sync:
                writer.sync()
            entry = self._entry(writer.path.relative_to(self.path).as_posix())
            if entry is not None:
                entry.update(
                    rows=writer.rows,
                    events=writer.events,
                    batches=writer.batches,
                    bytes=writer.nbytes,
                )
        self._write_manifest()

    def abandon_open(self, committed: Mapping[str, int]) -> None:
        """After a failed write: give up every open segment, cut back to ``committed``.

        ``committed`` maps an open segment (relative path) to the offset after its last
        committed batch (absent: nothing of it committed). The segments stay unclosed until
        :meth:`recover` closes them once the disk takes writes again; new appends open new
        segments.
        """
        for table in list(self._open):
            writer = self._open.pop(table)
            writer.abandon()
            relative = writer.path.relative_to(self.path).as_posix()
            seg.committed_prefix(writer.path, committed.get(relative, 0))

    def open_offsets(self) -> dict[str, int]:
        """Open segment (relative path) -> bytes written so far."""
        return {w.path.relative_to(self.path).as_posix(): w.nbytes for w in self._open.values()}

    def rows_by_table(self) -> dict[str, int]:
        """Rows per table over every segment, the open ones included."""
        totals: dict[str, int] = {}
        open_files = self.open_offsets()
        for entry in self.manifest["segments"]:
            if entry["file"] not in open_files:
                totals[entry["table"]] = totals.get(entry["table"], 0) + int(entry.get("rows", 0))
        for table, writer in self._open.items():
            totals[table] = totals.get(table, 0) + writer.rows
        return totals

    def memory_events(self) -> int:
        """Memory events over every segment: ``memory`` rows plus events in ``memory_chunks``."""
        open_files = self.open_offsets()
        total = 0
        for entry in self.manifest["segments"]:
            if entry["file"] in open_files:
                continue
            if entry["table"] == "memory":
                total += int(entry.get("rows", 0))
            elif entry["table"] == "memory_chunks":
                total += int(entry.get("events", 0))
        for table, writer in self._open.items():
            total += writer.rows if table == "memory" else writer.events
        return total

    def close(self) -> None:
        """Close every segment (writing footers) and mark the log cleanly closed."""
        if self._closed:
            return
        for table in list(self._open):
            self._close_segment(table, write=False)  # (one manifest write for them all)
        self._closed = True
        self.manifest["writer"]["state"] = "closed"
        self._write_manifest()

    def _write_manifest(self) -> None:
        self.manifest["updated_ns"] = time.time_ns()
        _write_manifest(self.path, self.manifest)

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Segment:
    """One segment file of a table, as listed by :meth:`LogReader.segments`."""

    table: str
    path: Path
    closed: bool  # the writer closed it (it has a footer)
    rows: int | None  # rows according to the manifest (None: not listed yet)

    def read(self) -> pa.Table:
        """Every complete record batch of this segment."""
        return seg.read_segment(self.path, TABLES[self.table]).table


def _chunk_events(table: str, data: pa.Table | pa.RecordBatch) -> int:
    if table != "memory_chunks" or not data.num_rows:
        return 0
    return int(pc.sum(data.column("n")).as_py() or 0)


def _writer_alive(writer: Mapping[str, Any]) -> bool:
    if writer.get("state") != "open" or writer.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(writer.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


class LogReader:
    """Read access to a log directory; see :func:`open_log`."""

    def __init__(self, events_dir: Path) -> None:
        self.path = events_dir
        self.manifest = _read_manifest(events_dir)
        self.log_id: str = str(self.manifest.get("log_id", ""))
        self.live = _writer_alive(self.manifest.get("writer", {}))
        self._problems: list[str] = []
        self._recovered: dict[Path, pa.Table] = {}
        self._good_files: dict[str, list[Path]] = {}
        # Each table's segments are checked (an unclosed one read whole) when first used: a
        # reader of ``processes`` never reads the memory chunks of a log being written.
        self._scanned: set[str] = set()

    @property
    def known_problems(self) -> list[str]:
        """What could not be read in the tables checked so far (checks nothing more)."""
        return self._problems

    @property
    def problems(self) -> list[str]:
        """What could not be read, in every table (checks every table's segments)."""
        for table in TABLES:
            self._ensure(table)
        return self._problems

    def _ensure(self, table: str) -> None:
        if table not in self._scanned:
            self._scanned.add(table)
            self._scan(table)

    def segments(self, table: str) -> list[Segment]:
        """The table's segment files in order, including ones the manifest has not listed."""
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; the log has {', '.join(TABLES)}")
        listed = {
            e["file"]: e for e in self.manifest.get("segments", []) if e.get("table") == table
        }
        out = []
        for file in sorted((self.path / table).glob(f"{table}-*{_SUFFIX}")):
            entry = listed.get(f"{table}/{file.name}")
            out.append(
                Segment(
                    table=table,
                    path=file,
                    closed=bool(entry and entry.get("closed")),
                    rows=None if entry is None else int(entry.get("rows", 0)),
                )
            )
        return out

    def _scan(self, table: str) -> None:
        good: list[Path] = []
        on_disk = {segment.path.name for segment in self.segments(table)}
        for entry in self.manifest.get("segments", []):
            name = str(entry.get("file", "")).rsplit("/", 1)[-1]
            if entry.get("table") == table and name not in on_disk:
                self._problems.append(
                    f"{entry.get('file')}: listed in the manifest but missing from disk "
                    f"({entry.get('rows', 0)} rows lost)"
                )
        for segment in self.segments(table):
            relative = f"{table}/{segment.path.name}"
            records = integrity.read_records(segment.path)
            # the checksums first: damaged bytes are never handed to the Arrow reader
            intact = records is None or integrity.verify_all(segment.path, records)
            footer = segment.closed and intact and _footer_ok(segment.path)
            if footer:
                good.append(segment.path)
                continue
            if records is not None:
                self._read_verified(segment, relative, footer)
                continue
            result = seg.read_segment(segment.path, TABLES[table])
            self._recovered[segment.path] = result.table
            if segment.closed:
                self._problems.append(
                    f"{relative}: closed segment is damaged (footer unreadable); "
                    f"read {result.batches} complete batches ({result.table.num_rows} rows)"
                    + (f", then: {result.error}" if result.error else "")
                )
            elif result.error and not self.live:
                self._problems.append(
                    f"{relative}: truncated after {result.batches} complete batches "
                    f"({result.table.num_rows} rows): {result.error}"
                )
            elif not self.live:
                self._problems.append(
                    f"{relative}: not closed (its writer stopped without closing it); "
                    f"read {result.batches} complete batches ({result.table.num_rows} rows)"
                )
        self._good_files[table] = good

    def _read_verified(self, segment: Segment, relative: str, footer: bool) -> None:
        """Keep a segment's intact batches in memory, naming every damaged one."""
        schema = TABLES[segment.table]
        problems: list[str] = []
        read = integrity.read_verified(
            segment.path,
            schema,
            relative,
            closed=segment.closed,
            live=self.live,
            on_problem=problems.append,
        )
        batches, _ = read if read is not None else ([], False)
        table = pa.Table.from_batches([_conform_batch(b, schema) for b in batches], schema=schema)
        self._recovered[segment.path] = table
        self._problems += problems
        if segment.closed and not footer and not problems:
            self._problems.append(
                f"{relative}: closed segment's footer is damaged; read "
                f"{len(batches)} intact batches ({table.num_rows} rows)"
            )
        elif not segment.closed and not self.live:
            self._problems.append(
                f"{relative}: not closed (its writer stopped without closing "
                f"it); read {len(batches)} intact batches "
                f"({table.num_rows} rows)"
            )

    def dataset(self, table: str) -> ds.Dataset:
        """The table as a pyarrow dataset (an empty one of the schema when it has no rows).

        Lazy for every table except ``memory`` of a log with ``memory_chunks`` rows.

        Warning:
            ``dataset("memory")`` of such a log (every log a broker writes by default) is
            **not lazy**: it decodes every memory event into memory first, the whole log at
            once (58 bytes per event: 2.9 GB for 50 million events). To read memory
            events, stream :meth:`memory_batches` / :meth:`memory_reader` (bounded batches
            in log order) or count them with :meth:`memory_events`; :meth:`stored_dataset`
            gives the stored rows of either table lazily.
        """
        import pyarrow.dataset as ds

        if table == "memory" and self.chunk_events():
            decoded = pa.Table.from_batches(list(self._chunk_memory_batches()), schema=MEMORY)
            return ds.dataset([self.stored_dataset("memory"), ds.dataset(decoded)])
        return self.stored_dataset(table)

    def stored_dataset(self, table: str) -> ds.Dataset:
        """The table's stored rows as a lazy dataset (``memory``: only the columnar rows)."""
        import pyarrow.dataset as ds

        schema = TABLES[table]
        self._ensure(table)
        parts: list[ds.Dataset] = []
        files = self._good_files.get(table, [])
        if files:
            parts.append(ds.dataset([str(f) for f in files], format="ipc", schema=schema))
        for segment in self.segments(table):
            recovered = self._recovered.get(segment.path)
            if recovered is not None and recovered.num_rows:
                parts.append(ds.dataset(recovered))
        if not parts:
            return ds.dataset(schema.empty_table())
        if len(parts) == 1:
            return parts[0]
        return ds.dataset(parts)

    def table(self, table: str) -> pa.Table:
        """The whole table in memory (convenience for small tables and tests)."""
        return self.dataset(table).to_table()

    # -- memory events ----------------------------------------------------------------------

    def chunk_events(self) -> int:
        """Memory events stored as chunks (the sum of ``memory_chunks.n``)."""
        counts = self.stored_dataset("memory_chunks").to_table(columns=["n"]).column("n")
        return int(pc.sum(counts).as_py() or 0)

    def memory_events(self) -> int:
        """Every memory event of the log (columnar rows plus events in chunks)."""
        return self.stored_dataset("memory").count_rows() + self.chunk_events()

    def table_batches(self, table: str) -> Iterator[pa.RecordBatch]:
        """The stored record batches of ``table`` in log order (segment by segment)."""
        schema = TABLES[table]
        self._ensure(table)
        good = set(self._good_files.get(table, []))
        for segment in self.segments(table):
            if segment.path in good:
                with pa.memory_map(str(segment.path)) as source:
                    reader = ipc.open_file(source)
                    for i in range(reader.num_record_batches):
                        yield _conform_batch(reader.get_batch(i), schema)
                continue
            recovered = self._recovered.get(segment.path)
            if recovered is not None:
                for batch in recovered.to_batches():
                    yield _conform_batch(batch, schema)

    def _chunk_memory_batches(self, target: int | None = None) -> Iterator[pa.RecordBatch]:
        from memscope.eventlog.chunks import TARGET_EVENTS, decode_chunk_batches

        yield from decode_chunk_batches(
            self.table_batches("memory_chunks"), target or TARGET_EVENTS, self._problems.append
        )

    def memory_batches(self, target: int | None = None) -> Iterator[pa.RecordBatch]:
        """Every memory event as record batches of the ``memory`` schema, in log order.

        First the columnar ``memory`` rows, then the ``memory_chunks`` rows decoded (each by
        its encoding, batches of at least ``target`` events, default 65,536, and at most
        ``max(target, chunks.MAX_EVENTS)``: 262,144, so a read-ahead of a few batches stays
        bounded; a big chunk's events span several batches). A broker writes
        one of the two tables (``log_memory``), so this is arrival order. A chunk that does
        not decode is skipped and named in :attr:`problems`.
        """
        from memscope.eventlog.chunks import MAX_EVENTS, split_batch

        for batch in self.table_batches("memory"):
            if batch.num_rows:
                yield from split_batch(batch, max(target or 0, MAX_EVENTS))
        yield from self._chunk_memory_batches(target)

    def memory_reader(self, target: int | None = None) -> pa.RecordBatchReader:
        """:meth:`memory_batches` as a (read-once) RecordBatchReader."""
        return pa.RecordBatchReader.from_batches(MEMORY, self.memory_batches(target))


def _conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly ``schema`` (a file's metadata dropped, columns put in order)."""
    if batch.schema.equals(schema, check_metadata=True):
        return batch
    if batch.schema.remove_metadata().equals(schema):
        return pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    # (a column added to the table since the segment was written reads as nulls)
    return pa.RecordBatch.from_arrays(
        [
            batch.column(name).cast(field.type)
            if name in batch.schema.names
            else pa.nulls(batch.num_rows, field.type)
            for name, field in zip(schema.names, schema, strict=True)
        ],
        schema=schema,
    )


def _footer_ok(path: Path) -> bool:
    try:
        with pa.memory_map(str(path)) as source:
            pa.ipc.open_file(source)
    except (pa.ArrowException, OSError):
        return False
    return True


def open_log(path: str | os.PathLike[str]) -> LogReader:
    """Open a log for reading: ``path`` is a run directory or its ``events/`` directory.

    A table's segments are checked on its first read through the reader (damaged ones are
    named in :attr:`LogReader.problems`, which checks every table).

    Raises:
        LogError: no manifest, an unreadable one, or a log of another format version.
    """
    return LogReader(_events_dir(path))
