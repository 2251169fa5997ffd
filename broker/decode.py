"""Turn one validated envelope into Arrow record batches of the log's tables.

Memory chunks are decoded by :func:`memscope.producer.records.decode_chunk` into numpy
arrays that are wrapped by pyarrow without copying; the broker adds ``pid``, ``tid`` and
``seq`` columns with numpy, so no event is ever touched one at a time in Python.

The ``seq`` of an event is ``(batch seq << SEQ_SHIFT) | index within the batch``: unique per
producer and increasing in the producer's order even when batches arrive out of order
(a replay after a broker restart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from memscope.broker.schema import MEMORY, PRODUCER_RECORD_TABLES, TABLES
from memscope.producer.records import decode_chunk
from memscope.producer.wire import MAX_BATCH_EVENTS, Envelope, WireError

SEQ_SHIFT = 24
assert MAX_BATCH_EVENTS < 1 << SEQ_SHIFT
_MAX_BATCH_SEQ = (1 << (64 - SEQ_SHIFT)) - 1
_U64_MAX = (1 << 64) - 1
_MEMORY_PRODUCER_COLUMNS = [name for name in MEMORY.names if name not in ("pid", "tid", "seq")]
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError)


@dataclass(frozen=True)
class Decoded:
    """The record batches of one envelope, keyed by table."""

    envelope: Envelope
    tables: dict[str, pa.RecordBatch]


def decode(envelope: Envelope) -> Decoded:
    """Decode every chunk and rare table of ``envelope``.

    Raises:
        WireError: a chunk or rare table is malformed; nothing of the envelope is kept.
    """
    if envelope.seq > _MAX_BATCH_SEQ:
        raise WireError(f"batch seq {envelope.seq} exceeds {_MAX_BATCH_SEQ}")
    tables: dict[str, pa.RecordBatch] = {}
    if envelope.mem:
        memory = _memory_batch(envelope)
        if memory.num_rows:
            tables["memory"] = memory
    for name, columns in envelope.rec.items():
        batch = _rare_batch(name, columns, envelope.pid)
        if batch.num_rows:
            tables[name] = batch
    return Decoded(envelope, tables)


def _memory_batch(envelope: Envelope) -> pa.RecordBatch:
    parts: list[dict[str, np.ndarray]] = []
    tids: list[np.ndarray] = []
    for chunk in envelope.mem:
        tid = chunk["tid"]
        if not 0 <= tid <= _U64_MAX:
            raise WireError(f"memory chunk tid {tid} out of range")
        columns = decode_chunk(chunk)
        count = len(columns["ts_ns"])
        if count != chunk["n"]:
            raise WireError(f"memory chunk says n={chunk['n']} but decodes to {count} events")
        parts.append(columns)
        tids.append(np.full(count, tid, dtype=np.uint64))
    total = sum(len(p["ts_ns"]) for p in parts)
    if len(parts) == 1:
        merged = parts[0]
        tid_column = tids[0]
    else:
        merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        tid_column = np.concatenate(tids)
    seq = np.arange(total, dtype=np.uint64)
    seq |= np.uint64(envelope.seq << SEQ_SHIFT)
    arrays = [
        pa.array(np.full(total, envelope.pid, dtype=np.uint32)),
        pa.array(tid_column),
        pa.array(seq),
    ]
    arrays += [pa.array(merged[name]) for name in _MEMORY_PRODUCER_COLUMNS]
    return pa.RecordBatch.from_arrays(arrays, schema=MEMORY)


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
