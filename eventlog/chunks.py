"""Read side of the ``memory_chunks`` table: decode stored chunks into ``memory`` batches.

The broker stores memory chunks as the producer encoded them (``rec1``; ``cols1`` as its
columns concatenated; see :mod:`memscope.protocol.log_schema`); :func:`decode_chunk_batches` turns
record batches of ``memory_chunks`` rows into record batches of the
:data:`~memscope.protocol.log_schema.MEMORY` schema, in order, each of at least ``target`` events
(except the last). Every chunk is decoded by its encoding's decoder (rec1: the C decoder)
straight into the columns of the output batch (no per-chunk arrays, no concatenation);
``pid``, ``tid`` and ``seq`` are filled with numpy. A chunk that does not decode (a damaged
file: the broker validated every chunk it stored) is left out and reported through
``on_problem``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from memscope.protocol.log_schema import MEMORY
from memscope.protocol.records import COLS1_ROW_BYTES, REC1_HEADER, SEQ_SHIFT
from memscope.protocol.wire import MEMORY_COLUMNS, WireError

#: Events per decoded record batch (at least; a batch ends on a chunk boundary).
TARGET_EVENTS = 1 << 16
#: At most this many events per yielded batch (when ``target`` is smaller): a big chunk's
#: events are split over several batches, so a reader's read-ahead (a few batches deep)
#: stays bounded in events, not just in batches.
MAX_EVENTS = 1 << 18
_DTYPES = [np.dtype(code) for code in MEMORY_COLUMNS.values()]


def decode_chunk_batches(
    batches: Iterable[pa.RecordBatch],
    target: int = TARGET_EVENTS,
    on_problem: Callable[[str], None] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of decoded memory events from ``memory_chunks`` record batches.

    Each holds at least ``target`` events (except the last) and at most
    ``max(target, MAX_EVENTS)``; a chunk's events may span batches.
    """
    limit = max(target, MAX_EVENTS)
    for decoded in _decoded_batches(batches, target, on_problem):
        yield from split_batch(decoded, limit)


def split_batch(batch: pa.RecordBatch, limit: int = MAX_EVENTS) -> Iterator[pa.RecordBatch]:
    """``batch`` as zero-copy slices of at most ``limit`` rows (itself when small enough)."""
    if batch.num_rows <= limit:
        yield batch
        return
    for start in range(0, batch.num_rows, limit):
        yield batch.slice(start, limit)


def _decoded_batches(
    batches: Iterable[pa.RecordBatch],
    target: int,
    on_problem: Callable[[str], None] | None,
) -> Iterator[pa.RecordBatch]:
    pending: list[pa.RecordBatch] = []
    events = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        # A damaged n is bounded by the chunk's bytes here (decode_rows skips that chunk).
        counts = np.minimum(
            batch.column("n").to_numpy(zero_copy_only=False).astype(np.int64),
            np.diff(_offsets(batch.column("data"))).astype(np.int64),
        )
        start = 0
        # Cut the batch where the running total reaches the target.
        totals = np.cumsum(counts) + events
        while start < batch.num_rows:
            cut = int(np.searchsorted(totals[start:], target, side="left")) + start
            if cut >= batch.num_rows:
                pending.append(batch.slice(start))
                events = int(totals[-1])
                break
            pending.append(batch.slice(start, cut + 1 - start))
            yield decode_rows(pending, on_problem)
            pending, events = [], 0
            totals = totals - totals[cut]
            start = cut + 1
    if pending:
        yield decode_rows(pending, on_problem)


def decode_rows(
    pieces: list[pa.RecordBatch], on_problem: Callable[[str], None] | None = None
) -> pa.RecordBatch:
    """One ``memory`` record batch holding the decoded events of every chunk row of ``pieces``.

    A chunk whose ``n`` cannot fit its bytes (rec1: at least 2 bytes per record after the
    56-byte header; cols1: exactly ``n * COLS1_ROW_BYTES``) or of an unknown encoding is
    skipped before anything is allocated for it, and reported through ``on_problem``.
    """
    counts = np.concatenate([_checked_counts(p, on_problem) for p in pieces])
    total = int(counts.sum())
    out = [np.empty(total, dtype) for dtype in _DTYPES]
    ok = np.ones(len(counts), bool)
    row = 0
    index = 0
    for piece in pieces:
        encodings = piece.column("encoding")
        data = piece.column("data")
        offsets = _offsets(data)
        values = _values(data)
        for i in range(piece.num_rows):
            n = int(counts[index])
            if not n:  # empty, or damaged and already reported
                index += 1
                continue
            try:
                _decode_into(encodings[i].as_py(), values[offsets[i] : offsets[i + 1]], n, out, row)
            except WireError as exc:
                ok[index] = False
                if on_problem is not None:
                    on_problem(f"memory_chunks: a chunk of {n} events does not decode ({exc})")
            row += n
            index += 1
    identity = _identity(pieces, counts)
    columns = dict(zip(("pid", "tid", "seq"), identity, strict=True))
    columns.update(zip(MEMORY_COLUMNS, out, strict=True))
    if not ok.all():
        keep = np.repeat(ok, counts)
        columns = {name: values[keep] for name, values in columns.items()}
    return pa.RecordBatch.from_arrays([pa.array(columns[f.name]) for f in MEMORY], schema=MEMORY)


def _checked_counts(piece: pa.RecordBatch, on_problem: Callable[[str], None] | None) -> np.ndarray:
    """Each row's ``n``; 0 for a row whose ``n`` does not fit its data (reported)."""
    counts = piece.column("n").to_numpy(zero_copy_only=False).astype(np.int64)
    sizes = np.diff(_offsets(piece.column("data"))).astype(np.int64)
    encodings = piece.column("encoding").to_numpy(zero_copy_only=False)
    rec1 = encodings == "rec1"
    fits = np.where(
        rec1,
        (sizes >= REC1_HEADER) & (counts <= (sizes - REC1_HEADER) // 2),
        (encodings == "cols1") & (counts * COLS1_ROW_BYTES == sizes),
    )
    for i in np.flatnonzero(~fits).tolist():
        if on_problem is not None:
            reason = (
                f"unknown chunk encoding {encodings[i]!r}"
                if encodings[i] not in ("rec1", "cols1")
                else f"{encodings[i]} chunk claims {counts[i]} events in {sizes[i]} bytes"
            )
            on_problem(
                f"memory_chunks: a chunk of {counts[i]} events does not decode ({reason}); skipped"
            )
        counts[i] = 0
    return counts


def _decode_into(encoding: str, data: memoryview, n: int, out: list[np.ndarray], row: int) -> None:
    """Decode one stored chunk into rows ``row .. row + n`` of the ``out`` columns."""
    from memscope.protocol import _rec1

    if encoding == "rec1":
        _rec1.decode_rec1_into(data, n, out[0], out[1], out[2], out[3], out[4], out[5], out[6], row)
        return
    if encoding != "cols1":
        raise WireError(f"unknown chunk encoding {encoding!r}")
    if len(data) != n * COLS1_ROW_BYTES:
        raise WireError(f"cols1 chunk holds {len(data)} bytes, expected {n} x {COLS1_ROW_BYTES}")
    pos = 0
    for column, dtype in zip(out, _DTYPES, strict=True):
        column[row : row + n] = np.frombuffer(data, dtype, count=n, offset=pos)
        pos += n * dtype.itemsize


def _offsets(data: Any) -> np.ndarray:
    buffer = data.buffers()[1]
    dtype = np.int64 if pa.types.is_large_binary(data.type) else np.int32
    return np.frombuffer(buffer, dtype=dtype)[data.offset : data.offset + len(data) + 1]


def _values(data: Any) -> memoryview:
    buffer = data.buffers()[2]
    return memoryview(buffer) if buffer is not None else memoryview(b"")


def _identity(
    pieces: list[pa.RecordBatch],
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def column(name: str, dtype: type) -> np.ndarray:
        return np.concatenate(
            [p.column(name).to_numpy(zero_copy_only=False) for p in pieces]
        ).astype(dtype)

    pid = np.repeat(column("pid", np.uint32), counts)
    tid = np.repeat(column("tid", np.uint64), counts)
    first = (column("batch_seq", np.uint64) << np.uint64(SEQ_SHIFT)) | column(
        "first_index", np.uint64
    )
    starts = (np.cumsum(counts) - counts).astype(np.uint64)
    # seq of event j of a chunk starting at row s: first + (row - s); uint64 wraps cancel.
    seq = np.repeat(first - starts, counts) + np.arange(len(pid), dtype=np.uint64)
    return pid, tid, seq


def encode_memory_table(memory: pa.Table | pa.RecordBatch) -> pa.Table:
    """``memory_chunks`` rows (rec1) that decode to exactly the rows of ``memory``, in order.

    Each run of rows of one pid and tid whose ``seq`` steps by one within one batch seq becomes
    a chunk. For converting a columnar log and for tests; raises ``ValueError`` for rows rec1
    cannot hold (see :func:`memscope.protocol.records.encode_rec1`).
    """
    from memscope.protocol.log_schema import MEMORY_CHUNKS
    from memscope.protocol.records import encode_rec1

    table = pa.Table.from_batches([memory]) if isinstance(memory, pa.RecordBatch) else memory
    cols = {name: table.column(name).to_numpy() for name in MEMORY.names}
    seq = cols["seq"]
    rows = len(seq)
    if not rows:
        return MEMORY_CHUNKS.empty_table()
    mask = (1 << SEQ_SHIFT) - 1
    breaks = np.ones(rows, bool)
    breaks[1:] = (
        (cols["pid"][1:] != cols["pid"][:-1])
        | (cols["tid"][1:] != cols["tid"][:-1])
        | (seq[1:] != seq[:-1] + np.uint64(1))
        | ((seq[1:] >> np.uint64(SEQ_SHIFT)) != (seq[:-1] >> np.uint64(SEQ_SHIFT)))
    )
    starts = np.flatnonzero(breaks)
    ends = np.append(starts[1:], rows)
    out: dict[str, list[Any]] = {name: [] for name in MEMORY_CHUNKS.names}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        chunk = encode_rec1(
            int(cols["tid"][start]), {name: cols[name][start:end] for name in MEMORY_COLUMNS}
        )
        out["pid"].append(int(cols["pid"][start]))
        out["tid"].append(int(cols["tid"][start]))
        out["batch_seq"].append(int(seq[start]) >> SEQ_SHIFT)
        out["first_index"].append(int(seq[start]) & mask)
        out["n"].append(end - start)
        out["encoding"].append("rec1")
        out["data"].append(chunk["data"])
    return pa.table(out, schema=MEMORY_CHUNKS)
