"""Low-level reading and writing of one log segment (an Arrow IPC file of one table).

A segment is written with :class:`SegmentWriter` (IPC *file* format, each record batch
written straight to the file descriptor so that a killed writer loses at most the batch it
was writing). :func:`read_segment` reads a closed segment through its footer and falls back
to reading the bytes after the 8-byte magic as an IPC stream for a segment that was cut short
or is still open, returning every complete record batch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from memscope.eventlog import faults as _faults
from memscope.eventlog import integrity
from memscope.protocol.log_schema import LOG_FORMAT_VERSION

#: The IPC file format starts with these 6 bytes plus 2 bytes of padding.
FILE_MAGIC = b"ARROW1"
_STREAM_OFFSET = 8

META_VERSION = b"memscope.log_format_version"
META_TABLE = b"memscope.table"
META_LOG_ID = b"memscope.log_id"


def segment_schema(schema: pa.Schema, table: str, log_id: str) -> pa.Schema:
    """``schema`` with the log's identifying metadata attached."""
    meta = dict(schema.metadata or {})
    meta.update(
        {
            META_VERSION: str(LOG_FORMAT_VERSION).encode(),
            META_TABLE: table.encode(),
            META_LOG_ID: log_id.encode(),
        }
    )
    return schema.with_metadata(meta)


def ipc_options(compression: str) -> ipc.IpcWriteOptions:
    """Write options for segments; ``compression`` is ``zstd``, ``lz4`` or ``none``."""
    codec = None if compression == "none" else ("lz4" if compression == "lz4" else "zstd")
    return ipc.IpcWriteOptions(compression=codec, use_threads=False)


class SegmentWriter:
    """One open segment file; every batch reaches the OS before :meth:`write` returns.

    Each batch's checksum record (:mod:`memscope.eventlog.integrity`) is appended right after it.
    """

    def __init__(self, path: Path, schema: pa.Schema, options: ipc.IpcWriteOptions) -> None:
        self.path = path
        self.created_ns = time.time_ns()
        self.created_mono = time.monotonic()
        self.rows = 0
        self.batches = 0
        self.events = 0  # memory events in the rows (memory_chunks: the sum of n)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = ipc.new_file(self._sink, schema, options=options)
        self._checksums = integrity.ChecksumWriter(path)
        #: The offset after the last batch whose checksum was recorded.
        self.good_bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes written so far."""
        return int(self._sink.tell())

    def write(self, batch: pa.RecordBatch) -> int:
        """Append one record batch; return the file offset just after it."""
        start = self.good_bytes
        self._writer.write_batch(batch)
        _faults.check()  # (tests: a full disk after the bytes went out, as a torn write)
        end = int(self._sink.tell())
        self._checksums.add(start, end, batch.num_rows)
        self.good_bytes = end
        self.rows += batch.num_rows
        self.batches += 1
        return end

    def sync(self) -> None:
        """Ask the OS to put the written bytes on disk."""
        os.fsync(self._sink.fileno())
        self._checksums.sync()

    def close(self) -> int:
        """Write the footer, sync and close; return the final size in bytes."""
        self._writer.close()
        size = int(self._sink.tell())
        os.fsync(self._sink.fileno())
        self._sink.close()
        self._checksums.add_footer(self.good_bytes, size)
        self._checksums.close()
        return size

    def abandon(self) -> None:
        """Give the file up after a failed write: close it without a footer (no error raised).

        The bytes after :attr:`good_bytes` are whatever the failed write left; the caller cuts
        the file back (:func:`committed_prefix`) before it is read or closed again.
        """
        for close in (self._sink.close, self._checksums.close):
            try:
                close()
            except (OSError, pa.ArrowException):
                pass  # the disk that failed the write may fail the close too


@dataclass
class SegmentRead:
    """What reading one segment produced."""

    table: pa.Table
    batches: int
    footer: bool  # read through a valid footer
    complete: bool  # every byte after the magic belonged to a complete batch (or the footer)
    error: str = ""  # why reading stopped early


def read_segment(path: Path, schema: pa.Schema) -> SegmentRead:
    """Read every complete record batch of a segment, closed or not.

    A segment with checksums gives its intact batches only (``error`` names the others).
    """
    problems: list[str] = []
    verified = integrity.read_verified(
        path, schema, path.name, closed=False, live=False, on_problem=problems.append
    )
    if verified is not None:
        batches, _ = verified
        table = pa.Table.from_batches(batches, schema=batches[0].schema) if batches else None
        return SegmentRead(
            schema.empty_table() if table is None else _conform(table, schema),
            len(batches),
            footer=False,
            complete=not problems,
            error="; ".join(problems),
        )
    data = pa.py_buffer(path.read_bytes())
    try:
        reader = ipc.open_file(data)
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        table = pa.Table.from_batches(batches, schema=reader.schema)
        return SegmentRead(_conform(table, schema), len(batches), footer=True, complete=True)
    except (pa.ArrowException, OSError) as exc:
        footer_error = str(exc)
    return _read_as_stream(data, schema, footer_error)


def _read_as_stream(data: pa.Buffer, schema: pa.Schema, footer_error: str) -> SegmentRead:
    if data.size < _STREAM_OFFSET or data.slice(0, 6).to_pybytes() != FILE_MAGIC:
        return SegmentRead(schema.empty_table(), 0, False, False, "no Arrow file magic")
    try:
        reader = ipc.open_stream(data.slice(_STREAM_OFFSET))
    except (pa.ArrowException, OSError) as exc:
        return SegmentRead(schema.empty_table(), 0, False, False, f"no readable schema ({exc})")
    batches: list[pa.RecordBatch] = []
    error = ""
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
        except (pa.ArrowException, OSError) as exc:
            error = str(exc) or type(exc).__name__
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    del footer_error  # the stream reading is authoritative for an unclosed file
    return SegmentRead(_conform(table, schema), len(batches), False, not error, error)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table with the canonical schema (metadata of the file is dropped)."""
    if table.schema.remove_metadata().equals(schema.remove_metadata()):
        return table.replace_schema_metadata(schema.metadata)
    for field in schema:  # a column added to the table since the segment was written
        if field.name not in table.schema.names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(schema.names).cast(schema)


def committed_prefix(path: Path, end_offset: int) -> None:
    """Cut a segment file back to ``end_offset`` bytes (the end of its last committed batch)."""
    size = path.stat().st_size
    if end_offset < size:
        os.truncate(path, max(end_offset, 0))
    integrity.truncate_records(path, end_offset)


def rewrite_closed(
    path: Path, table: pa.Table, schema: pa.Schema, options: ipc.IpcWriteOptions
) -> int:
    """Replace ``path`` by a cleanly closed segment holding ``table``; return its size."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        writer = SegmentWriter(tmp, schema, options)
        try:
            for batch in table.to_batches():
                writer.write(batch)
            size = writer.close()
        except BaseException:
            writer.abandon()
            raise
        os.replace(integrity.checksum_path(tmp), integrity.checksum_path(path))
        os.replace(tmp, path)
    except BaseException:  # a full disk: leave the segment as it was, and no temporary files
        tmp.unlink(missing_ok=True)
        integrity.checksum_path(tmp).unlink(missing_ok=True)
        raise
    return size
