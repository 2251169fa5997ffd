"""Turn one validated envelope into Arrow record batches of the log's tables.

Memory chunks are decoded by :func:`memscope.protocol.records.decode_chunk` into numpy
arrays (views of the message's bytes). The broker keeps them as a :class:`MemoryPart` and
:class:`MemoryAssembler` copies the parts of a whole group of envelopes once, straight into
the columns of one large record batch (large batches compress faster per byte), adding the
``pid``, ``tid`` and ``seq`` columns with numpy: no event is touched one at a time in Python.

With ``keep_chunks`` (the broker's default, ``log_memory = "chunks"``) no chunk is decoded:
:func:`memscope.protocol.records.validate_chunk` checks each (for ``rec1`` a bounds-checked C
scan) and it is kept in a :class:`ChunkPart`, written as one row of the ``memory_chunks``
table (:func:`chunk_batch`); readers decode it. A ``rec1`` chunk is kept as it arrived; a
``cols1`` chunk as its seven column arrays concatenated (:func:`cols1_data`). Every memory
event of such a log is then in the one table, in arrival order (the tracer mixes both
encodings in one envelope: in aggregated mode promoted allocations are ``cols1`` chunks and
frees ``rec1`` ones, and the block matcher needs them in order).

The ``seq`` of an event is ``(batch seq << SEQ_SHIFT) | index within the batch``: unique per
producer and increasing in the producer's order even when batches arrive out of order
(a replay after a broker restart).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from memscope.broker import rowcheck
from memscope.protocol.log_schema import MEMORY, MEMORY_CHUNKS, PRODUCER_RECORD_TABLES, TABLES
from memscope.protocol.records import (
    SEQ_SHIFT,
    decode_chunk,
    validate_chunk,
)
from memscope.protocol.wire import MEMORY_COLUMNS, Envelope, WireError

_MAX_BATCH_SEQ = (1 << (64 - SEQ_SHIFT)) - 1
_U64_MAX = (1 << 64) - 1
_MEMORY_PRODUCER_COLUMNS = [name for name in MEMORY.names if name not in ("pid", "tid", "seq")]
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError)


@dataclass(frozen=True)
class MemoryPart:
    """The memory events of one envelope, still as the decoded numpy chunks.

    The broker assembles the parts of many envelopes straight into one record batch
    (:class:`MemoryAssembler`), so each event is copied once between the message and the log.
    """

    pid: int
    seq: int  # the envelope's batch seq
    tids: list[int]
    chunks: list[dict[str, np.ndarray]]  # the batch's memory events, back to back from 0
    rows: int

    def batch(self) -> pa.RecordBatch:
        """This part alone as a record batch of the ``memory`` table (fresh arrays)."""
        return MemoryAssembler().batch([self])


class MemoryAssembler:
    """Builds ``memory`` record batches from :class:`MemoryPart` s into reused buffers.

    :meth:`batches` yields one batch at a time; the caller must be done with it (have written
    it) before taking the next, since the buffers are reused. Small parts (a tracer flushing
    often) are copied together into batches of about ``target`` events; a part that is big
    enough on its own is passed through without copying its columns. Reused buffers stay in
    the CPU cache, which on a busy machine matters as much as the compression itself.
    """

    def __init__(self, reuse: bool = False, target: int = 65536) -> None:
        self.reuse = reuse
        self.target = target
        self._buffers: dict[str, np.ndarray] = {}
        self._arange = np.arange(0, dtype=np.uint64)

    def _out(self, name: str, rows: int) -> np.ndarray:
        dtype = _NUMPY[name]
        if not self.reuse:
            return np.empty(rows, dtype=dtype)
        buffer = self._buffers.get(name)
        if buffer is None or len(buffer) < rows:
            grown = max(rows, 2 * len(buffer) if buffer is not None else 0)
            buffer = self._buffers[name] = np.empty(grown, dtype)
        return buffer[:rows]

    def _index(self, rows: int) -> np.ndarray:
        if len(self._arange) < rows:
            self._arange = np.arange(max(rows, 2 * len(self._arange)), dtype=np.uint64)
        return self._arange[:rows]

    def batches(self, parts: list[MemoryPart]) -> Iterator[pa.RecordBatch]:
        """Record batches of the ``memory`` table holding every part, in order."""
        pending: list[MemoryPart] = []
        rows = 0
        for part in parts:
            if len(part.chunks) == 1 and part.rows >= self.target // 2:
                if pending:
                    yield self.batch(pending)
                    pending, rows = [], 0
                yield self._pass_through(part)
                continue
            pending.append(part)
            rows += part.rows
            if rows >= self.target:
                yield self.batch(pending)
                pending, rows = [], 0
        if pending:
            yield self.batch(pending)

    def _identity(self, part: MemoryPart, pos: int, out: dict[str, np.ndarray]) -> None:
        end = pos + part.rows
        out["pid"][pos:end] = part.pid
        np.bitwise_or(
            self._index(part.rows), np.uint64(part.seq << SEQ_SHIFT), out=out["seq"][pos:end]
        )
        for tid, chunk in zip(part.tids, part.chunks, strict=True):
            count = len(chunk["ts_ns"])
            out["tid"][pos : pos + count] = tid
            pos += count

    def _pass_through(self, part: MemoryPart) -> pa.RecordBatch:
        out = {name: self._out(name, part.rows) for name in ("pid", "tid", "seq")}
        self._identity(part, 0, out)
        out.update(part.chunks[0])
        return pa.RecordBatch.from_arrays([pa.array(out[f.name]) for f in MEMORY], schema=MEMORY)

    def batch(self, parts: list[MemoryPart]) -> pa.RecordBatch:
        """One record batch of the ``memory`` table holding every part, in order."""
        total = sum(part.rows for part in parts)
        out = {field.name: self._out(field.name, total) for field in MEMORY}
        pos = 0
        for part in parts:
            self._identity(part, pos, out)
            for chunk in part.chunks:
                count = len(chunk["ts_ns"])
                for name in _MEMORY_PRODUCER_COLUMNS:
                    out[name][pos : pos + count] = chunk[name]
                pos += count
        return pa.RecordBatch.from_arrays([pa.array(out[f.name]) for f in MEMORY], schema=MEMORY)


_NUMPY: dict[str, np.dtype[Any]] = {
    field.name: np.dtype(field.type.to_pandas_dtype()) for field in MEMORY
}


def cols1_data(columns: dict[str, np.ndarray]) -> bytes:
    """The ``data`` of a ``cols1`` row of ``memory_chunks``: the columns concatenated.

    The seven arrays of ``MEMORY_COLUMNS`` in that order (``ts_ns``, ``kind``, ``domain``,
    ``address``, ``old_address``, ``size``, ``stack_id``), each little-endian of its dtype,
    all of one length ``n``: ``n * COLS1_ROW_BYTES`` bytes.
    """
    return b"".join(
        np.ascontiguousarray(columns[name], dtype=np.dtype(code)).tobytes()
        for name, code in MEMORY_COLUMNS.items()
    )


@dataclass(frozen=True)
class ChunkPart:
    """The memory chunks of one envelope, validated and kept (see :func:`cols1_data`)."""

    pid: int
    seq: int  # the envelope's batch seq
    tids: list[int]
    firsts: list[int]  # index within the batch of each chunk's first event
    counts: list[int]
    encodings: list[str]
    data: list[bytes]

    @property
    def rows(self) -> int:
        """Events in the kept chunks."""
        return sum(self.counts)


def chunk_batch(parts: list[ChunkPart]) -> pa.RecordBatch:
    """One record batch of the ``memory_chunks`` table holding every part's chunks, in order."""
    pids: list[int] = []
    seqs: list[int] = []
    for part in parts:
        pids += [part.pid] * len(part.counts)
        seqs += [part.seq] * len(part.counts)
    arrays = [
        pa.array(pids, pa.uint32()),
        pa.array([t for p in parts for t in p.tids], pa.uint64()),
        pa.array(seqs, pa.uint64()),
        pa.array([f for p in parts for f in p.firsts], pa.uint32()),
        pa.array([c for p in parts for c in p.counts], pa.uint32()),
        pa.array([e for p in parts for e in p.encodings], pa.string()),
        pa.array([d for p in parts for d in p.data], pa.binary()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=MEMORY_CHUNKS)


@dataclass(frozen=True)
class Decoded:
    """The decoded content of one envelope: its memory events and rare tables' batches."""

    envelope: Envelope
    rare: dict[str, pa.RecordBatch]
    memory: MemoryPart | None = None
    chunks: ChunkPart | None = None
    #: Rare rows dropped by :func:`memscope.broker.rowcheck.check`, and why (one per table).
    rejected_rows: int = 0
    row_problems: tuple[str, ...] = ()

    @property
    def memory_events(self) -> int:
        """Memory events of the envelope (decoded ones and ones kept as chunks)."""
        return (self.memory.rows if self.memory is not None else 0) + (
            self.chunks.rows if self.chunks is not None else 0
        )

    @property
    def tables(self) -> dict[str, pa.RecordBatch]:
        """Every table's record batch, ``memory`` included (built on each access)."""
        tables = dict(self.rare)
        if self.memory is not None:
            tables = {"memory": self.memory.batch(), **tables}
        if self.chunks is not None:
            tables = {"memory_chunks": chunk_batch([self.chunks]), **tables}
        return tables


def decode(envelope: Envelope, keep_chunks: bool = False) -> Decoded:
    """Decode every chunk and rare table of ``envelope``.

    With ``keep_chunks``, every chunk is validated and kept (``chunks``: ``rec1`` as it
    arrived, ``cols1`` as :func:`cols1_data`) instead of being decoded into ``memory``.

    Raises:
        WireError: a chunk or rare table is malformed; nothing of the envelope is kept.
    """
    if envelope.seq > _MAX_BATCH_SEQ:
        raise WireError(f"batch seq {envelope.seq} exceeds {_MAX_BATCH_SEQ}")
    memory, chunks = _memory_parts(envelope, keep_chunks) if envelope.mem else (None, None)
    rare: dict[str, pa.RecordBatch] = {}
    rejected = 0
    problems: list[str] = []
    for name, columns in envelope.rec.items():
        checked = rowcheck.check(name, _rare_batch(name, columns, envelope.pid))
        if checked.rejected:
            rejected += checked.rejected
            problems.append(checked.reason)
        if checked.batch.num_rows:
            rare[name] = checked.batch
    return Decoded(
        envelope,
        rare,
        memory if memory is not None and memory.rows else None,
        chunks if chunks is not None and chunks.rows else None,
        rejected,
        tuple(problems),
    )


def _memory_parts(
    envelope: Envelope,
    keep_chunks: bool,
) -> tuple[MemoryPart, ChunkPart | None]:
    """The envelope's memory chunks, decoded into columns.

    With ``keep_chunks`` they are checked and kept instead: rec1 as they are, others as cols1.
    """
    columns_list: list[dict[str, np.ndarray]] = []
    tids: list[int] = []
    kept = ChunkPart(envelope.pid, envelope.seq, [], [], [], [], []) if keep_chunks else None
    pos = 0
    for chunk in envelope.mem:
        tid = chunk["tid"]
        if not 0 <= tid <= _U64_MAX:
            raise WireError(f"memory chunk tid {tid} out of range")
        if kept is not None and chunk["enc"] == "rec1":
            validate_chunk(chunk)
            count, encoding = chunk["n"], "rec1"
            data = bytes(chunk["data"]) if count else b""
        else:
            columns = decode_chunk(chunk)
            rowcheck.check_memory_columns(columns)
            count = len(columns["ts_ns"])
            if count != chunk["n"]:
                raise WireError(f"memory chunk says n={chunk['n']} but decodes to {count} events")
            if kept is None:
                if count:
                    columns_list.append(columns)
                    tids.append(tid)
                continue
            encoding = "cols1"
            data = cols1_data(columns) if count else b""
        if count:
            kept.tids.append(tid)
            kept.firsts.append(pos)
            kept.counts.append(count)
            kept.encodings.append(encoding)
            kept.data.append(data)
        pos += count
    rows = sum(len(c["ts_ns"]) for c in columns_list)
    return MemoryPart(envelope.pid, envelope.seq, tids, columns_list, rows), kept


def _rare_batch(name: str, columns: Any, pid: int) -> pa.RecordBatch:
    if name not in PRODUCER_RECORD_TABLES:
        raise WireError(f"unknown rare table {name!r}")
    schema = TABLES[name]
    unknown = sorted(set(columns) - set(schema.names) - {"pid"}) if columns else []
    if unknown:
        raise WireError(f"rare table {name!r} has unknown column(s) {', '.join(map(str, unknown))}")
    rows = len(next(iter(columns.values()))) if columns else 0
    arrays = []
    for field in schema:
        if field.name == "pid":
            arrays.append(pa.array(np.full(rows, pid, dtype=np.uint32)))
            continue
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(rows, type=field.type))
            continue
        try:
            arrays.append(pa.array(values, type=field.type))
        except _ARROW_ERRORS as exc:
            raise WireError(f"rare table {name!r} column {field.name!r}: {exc}") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
