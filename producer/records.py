"""Decoding (and simple encoding) of memory chunks into the columns of ``MEMORY_COLUMNS``.

Encodings (see :mod:`memscope.producer.wire`):

* ``cols1``: ``chunk["cols"]`` maps each column of ``MEMORY_COLUMNS`` to the bytes of a
  little-endian array of that column's dtype; every array holds ``chunk["n"]`` values.
* ``rec1``: the tracer's compact record stream (documented where it is implemented).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memscope.producer.wire import MEMORY_COLUMNS, WireError

_DTYPES = {name: np.dtype(code) for name, code in MEMORY_COLUMNS.items()}


def encode_cols1(tid: int, columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Build a ``cols1`` chunk for thread ``tid`` from arrays of equal length."""
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1 or set(columns) != set(_DTYPES):
        raise ValueError(f"need equal-length arrays for exactly {sorted(_DTYPES)}")
    n = lengths.pop()
    cols = {name: np.ascontiguousarray(columns[name], dtype=dt).tobytes() for name, dt in
            _DTYPES.items()}
    return {"tid": tid, "n": n, "enc": "cols1", "cols": cols}


def _decode_cols1(chunk: dict[str, Any]) -> dict[str, np.ndarray]:
    n = chunk["n"]
    cols = chunk.get("cols")
    if not isinstance(cols, dict):
        raise WireError("cols1 chunk has no 'cols' map")
    out: dict[str, np.ndarray] = {}
    for name, dtype in _DTYPES.items():
        data = cols.get(name)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise WireError(f"cols1 chunk lacks column {name!r}")
        if len(data) != n * dtype.itemsize:
            raise WireError(
                f"cols1 column {name!r} holds {len(data)} bytes, expected {n} x {dtype.itemsize}"
            )
        out[name] = np.frombuffer(data, dtype=dtype)
    return out


_DECODERS = {"cols1": _decode_cols1}


def decode_chunk(chunk: dict[str, Any]) -> dict[str, np.ndarray]:
    """Decode one memory chunk into arrays keyed and typed as ``MEMORY_COLUMNS``.

    Raises:
        WireError: the chunk is malformed or uses an unknown encoding.
    """
    n = chunk.get("n")
    if not isinstance(n, int) or n < 0:
        raise WireError(f"memory chunk count {n!r} is not a non-negative int")
    decoder = _DECODERS.get(chunk.get("enc", ""))
    if decoder is None:
        raise WireError(f"unknown memory chunk encoding {chunk.get('enc')!r}")
    return decoder(chunk)
