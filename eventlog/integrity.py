"""Per-batch checksums of log segments: written beside each segment, verified on every read.

A segment ``<table>/<table>-NNNNNN.arrow`` has a checksum file ``<table>/_<table>-NNNNNN.arrow.crc``
(the leading ``_`` keeps it out of pyarrow's and DuckDB's directory scans, so the segments
stay readable with pyarrow alone). It holds one fixed-size little-endian record per record
batch, appended right after the batch reached the segment::

    offset  u64   first byte of what writing the batch added to the segment (the first
                  batch's range starts at 0: the file magic and the schema message are in it)
    length  u64   bytes written for the batch
    rows    u32   the batch's rows; 0xFFFFFFFF for the last record of a closed segment,
                  which covers its end-of-stream marker and footer
    crc     u32   CRC-32 (zlib) of those bytes as they are on disk
    check   u32   CRC-32 of the 24 bytes above (a damaged record is told from a damaged batch)

A reader checks each batch's bytes against its record before it parses them, so a flipped
bit costs exactly the batches it touched: every other batch of the segment is read (a
damaged batch is never handed to the Arrow decoder). A segment without a checksum file
(written before checksums existed) is read as before, unverified.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

RECORD = struct.Struct("<QQIII")
#: ``rows`` of the record that covers a closed segment's footer.
FOOTER_ROWS = 0xFFFFFFFF
_BODY = struct.Struct("<QQII")
_MAGIC_BYTES = 8  # "ARROW1" and 2 bytes of padding before the first message
#: What reading a message may still raise (an unrecorded tail is not verified; a verified one
#: of another schema may not fit): ArrowException covers ArrowInvalid, ArrowIOError,
#: ArrowNotImplementedError, ...; AttributeError is ``read_message`` giving None at the end.
_ARROW_ERRORS = (
    pa.ArrowException,
    OSError,
    EOFError,
    ValueError,
    IndexError,
    KeyError,
    AttributeError,
)


def checksum_path(segment: Path) -> Path:
    """The checksum file of ``segment``."""
    return segment.with_name(f"_{segment.name}.crc")


class ChecksumWriter:
    """Appends one record per batch written to a segment (see the module docs)."""

    def __init__(self, segment: Path) -> None:
        self.path = checksum_path(segment)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._segment = os.open(segment, os.O_RDONLY)  # the bytes are read back to sum them

    def add(self, start: int, end: int, rows: int) -> None:
        """Record the batch just written to bytes ``start..end`` of the segment."""
        crc = zlib.crc32(os.pread(self._segment, end - start, start)) if end > start else 0
        body = _BODY.pack(start, end - start, rows, crc)
        _write_all(self._fd, body + struct.pack("<I", zlib.crc32(body)))

    def add_footer(self, start: int, end: int) -> None:
        """Record the end-of-stream marker and footer written at ``start..end`` on close."""
        self.add(start, end, FOOTER_ROWS)

    def sync(self) -> None:
        """Put the records on disk."""
        os.fsync(self._fd)

    def close(self) -> None:
        """Sync and close (idempotent)."""
        if self._segment >= 0:
            os.close(self._segment)
            self._segment = -1
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(frozen=True)
class BatchRecord:
    """One checksum record; ``intact`` is False when the record itself is damaged."""

    offset: int
    length: int
    rows: int
    crc: int
    intact: bool


def read_records(segment: Path) -> list[BatchRecord] | None:
    """The segment's checksum records (a torn last one left out); None without a file."""
    try:
        data = checksum_path(segment).read_bytes()
    except OSError:  # none (a segment older than checksums), or unreadable: read unverified
        return None
    records = []
    for start in range(0, len(data) - RECORD.size + 1, RECORD.size):
        offset, length, rows, crc, check = RECORD.unpack_from(data, start)
        intact = zlib.crc32(data[start : start + _BODY.size]) == check
        records.append(BatchRecord(offset, length, rows, crc, intact))
    return records


def truncate_records(segment: Path, end_offset: int) -> None:
    """Drop the records of batches that end after ``end_offset`` (a segment cut back)."""
    records = read_records(segment)
    if records is None:
        return
    keep = 0
    for record in records:
        if not record.intact or record.offset + record.length > end_offset:
            break
        keep += 1
    os.truncate(checksum_path(segment), keep * RECORD.size)


@dataclass
class Piece:
    """One batch of a verified read: ``batch`` is None when it was damaged (see ``problem``)."""

    batch: pa.RecordBatch | None
    end: int  # the offset after this batch: a later read may start there
    problem: str = ""


class VerifiedSegment:
    """Reads a segment batch by batch, each checked against its checksum record first.

    ``schema`` is the table's schema, used when the segment's own schema message is in a
    damaged first batch. ``name`` labels problems (``table/file``).
    """

    def __init__(
        self, path: Path, schema: pa.Schema, name: str, records: list[BatchRecord]
    ) -> None:
        self.path = path
        self.name = name
        self.records = records
        self._fallback = schema
        self._schema: pa.Schema | None = None

    def _bytes(self, record: BatchRecord, data: pa.Buffer) -> pa.Buffer | None:
        end = record.offset + record.length
        if not record.intact or end > data.size:
            return None
        chunk = data.slice(record.offset, record.length)
        return chunk if zlib.crc32(chunk) == record.crc else None

    def _messages(self, chunk: pa.Buffer, first: bool) -> list[pa.RecordBatch]:
        source = pa.BufferReader(chunk)
        if first:
            source.seek(_MAGIC_BYTES)
        batches = []
        while source.tell() < chunk.size:
            message = ipc.read_message(source)
            if message.type == "schema":
                self._schema = ipc.read_schema(message)
            elif message.type == "record batch":
                batch = ipc.read_record_batch(message, self._schema or self._fallback)
                batch.validate(full=True)
                batches.append(batch)
        return batches

    def _ensure_schema(self, data: pa.Buffer) -> None:
        if self._schema is not None or not self.records:
            return
        chunk = self._bytes(self.records[0], data)
        if chunk is None:
            return
        try:
            source = pa.BufferReader(chunk)
            source.seek(_MAGIC_BYTES)
            self._schema = ipc.read_schema(ipc.read_message(source))
        except _ARROW_ERRORS:
            self._schema = None

    def pieces(self, data: pa.Buffer, start: int = 0) -> Iterator[Piece]:
        """Every recorded batch whose bytes begin at or after ``start``, in order."""
        if start:
            self._ensure_schema(data)
        read = 0
        for index, record in enumerate(self.records):
            if record.offset < start:
                continue
            end = record.offset + record.length
            if record.rows == FOOTER_ROWS and record.intact:
                if self._bytes(record, data) is None:
                    yield Piece(
                        None,
                        end,
                        f"{self.name}: its footer is damaged; its batches "
                        "were read through their checksums",
                    )
                continue
            where = f"{self.name}: batch {index}"
            if record.intact and end > data.size:  # cut short: name the rest at once
                rest = [r for r in self.records[index:] if r.rows != FOOTER_ROWS]
                yield Piece(
                    None,
                    end,
                    f"{self.name}: cut short at byte {data.size} after "
                    f"{read} complete batches; {len(rest)} more batches "
                    f"({sum(r.rows for r in rest)} rows) missing",
                )
                return
            if not record.intact:
                yield Piece(None, end, f"{where}: its checksum record is damaged; skipped")
                continue
            chunk = self._bytes(record, data)
            if chunk is None:
                yield Piece(
                    None,
                    end,
                    f"{where} (bytes {record.offset}-{end}, {record.rows} "
                    "rows): checksum mismatch; skipped",
                )
                continue
            try:
                batches = self._messages(chunk, record.offset == 0)
            except _ARROW_ERRORS as exc:
                yield Piece(None, end, f"{where}: checksum intact but unreadable ({exc}); skipped")
                continue
            read += 1
            for batch in batches:
                yield Piece(batch, end)

    def read(
        self, start: int, on_problem: Callable[[str], None]
    ) -> Iterator[tuple[pa.RecordBatch, int]]:
        """``(batch, offset after it)`` of every intact recorded batch from ``start`` on.

        For a reader following a growing segment: it stops at the last record (the writer
        records each batch right after writing it) and a later call resumes from ``start``.
        """
        try:
            data = map_segment(self.path)
        except OSError as exc:
            on_problem(f"{self.name}: cannot be read ({exc.strerror or exc})")
            return
        for piece in self.pieces(data, start):
            if piece.batch is None:
                on_problem(piece.problem)
            else:
                yield piece.batch, piece.end

    def recorded_end(self) -> int:
        """The offset after the last recorded batch (0 when none)."""
        return max(
            (r.offset + r.length for r in self.records if r.intact and r.rows != FOOTER_ROWS),
            default=0,
        )

    def unrecorded(self, data: pa.Buffer) -> Iterator[Piece]:
        """Batches after the last record (a writer stopped between a batch and its record)."""
        start = self.recorded_end()
        if data.size < max(start, _MAGIC_BYTES):
            return
        source = pa.BufferReader(data)
        source.seek(start or _MAGIC_BYTES)
        while source.tell() < data.size:
            try:
                message = ipc.read_message(source)
                if message.type == "schema":
                    self._schema = ipc.read_schema(message)
                    continue
                if message.type != "record batch":
                    return
                batch = ipc.read_record_batch(message, self._schema or self._fallback)
                batch.validate(full=True)
            except _ARROW_ERRORS:
                return
            yield Piece(
                batch,
                source.tell(),
                f"{self.name}: a batch after the last checksum record, read unverified",
            )


def open_verified(path: Path, schema: pa.Schema, name: str) -> VerifiedSegment | None:
    """A verified reader of the segment, or None when it has no checksum file."""
    records = read_records(path)
    return None if records is None else VerifiedSegment(path, schema, name, records)


def map_segment(path: Path) -> pa.Buffer:
    """The segment's bytes, memory-mapped (the buffers read from it keep the mapping alive)."""
    return pa.memory_map(str(path)).read_buffer()


def verify_all(path: Path, records: list[BatchRecord]) -> bool:
    """Whether every record is intact and every batch's bytes match it."""
    try:
        data = map_segment(path)
        for record in records:
            if not record.intact or record.offset + record.length > data.size:
                return False
            if zlib.crc32(data.slice(record.offset, record.length)) != record.crc:
                return False
    except OSError:
        return False
    return True


def read_verified(
    path: Path,
    schema: pa.Schema,
    name: str,
    closed: bool,
    live: bool,
    on_problem: Callable[[str], None],
) -> tuple[list[pa.RecordBatch], bool] | None:
    """Every intact batch of a segment, problems reported; None without a checksum file.

    Batches after the last record are read (unverified, named) only when the segment is not
    closed and no writer is live (a live writer writes each record right after its batch).
    Returns the batches and whether any batch was missing or damaged.
    """
    verified = open_verified(path, schema, name)
    if verified is None:
        return None
    try:
        data = map_segment(path)
    except OSError as exc:
        on_problem(f"{name}: cannot be read ({exc.strerror or exc})")
        return [], True
    batches: list[pa.RecordBatch] = []
    damaged = False
    for piece in verified.pieces(data):
        if piece.batch is None:
            damaged = True
            on_problem(piece.problem)
        else:
            batches.append(piece.batch)
    if not closed and not live:
        for piece in verified.unrecorded(data):
            if piece.batch is not None:
                batches.append(piece.batch)
    return batches, damaged
