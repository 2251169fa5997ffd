"""Decoding (and simple encoding) of memory chunks into the columns of ``MEMORY_COLUMNS``.

Encodings (see :mod:`memscope.protocol.wire`):

* ``cols1``: ``chunk["cols"]`` maps each column of ``MEMORY_COLUMNS`` to the bytes of a
  little-endian array of that column's dtype; every array holds ``chunk["n"]`` values.
* ``rec1``: the tracer's compact record stream, below.

rec1 chunk: ``{"tid": int, "n": int, "enc": "rec1", "data": bytes}``. ``data`` is a 56-byte
little-endian header followed by exactly ``n`` records::

    offset  type  field
         0  u32   magic 0x31636572 (b"rec1")
         4  u32   n, the number of records (must equal chunk["n"])
         8  u64   clock_tick   } timestamp calibration: ts_ns = clock_ns +
        16  i64   clock_ns     }   (signed(tick - clock_tick) * clock_mult) >> 32
        24  u64   clock_mult   }   (ns per tick in 32.32 fixed point; arithmetic mod 2**64)
        32  u64   base_tick    } the delta state before the first record: the previous
        40  u64   base_addr    } record's tick, address and stack id
        48  u32   base_stack   }
        52  u32   reserved, 0

    record:
      byte 0     bits 0-1 kind (KIND_*), bits 2-4 domain (DOMAIN_*, at most 5),
                 bit 5 S (a stack delta follows), bit 6 T (same tick as the previous
                 record: no tick varint), bit 7 zero
      varint     zigzag(tick - previous tick)        (only without T; 64-bit wrap; ticks are
                                                      TSC cycles or ns)
      varint     zigzag(address - previous address)  (64-bit wrap)
      varint     size                                (absent for free)
      varint     zigzag(old_address - address)       (realloc only)
      varint     zigzag(stack - previous stack)      (only if S; 32-bit wrap)

Varints are LEB128 (7 bits per byte, low first, at most 10 bytes, at most 64 bits). The
tick, address and stack of each record become the "previous" values of the next. A record
without S has the previous record's stack id, except a free, whose stack id is 0. The
tracer gives a free a stack (and so always an S delta, 0 when its stack is the previous
record's) only in the RAW and MEM domains, where double frees happen; object frees have none.
A typical record is 4-6 bytes.

The C decoder (``_rec1.decode_rec1``) is the fast path; :func:`decode_rec1_py` is its
pure-Python twin, kept identical by tests on random and corrupted input. The broker, which
stores rec1 chunks as they arrive, checks them with :func:`validate_chunk` (the C scan
``_rec1.validate_rec1``: it accepts a chunk iff the decoder does, building no columns).
:func:`encode_rec1` builds a rec1 chunk from columns (synthetic producers, tests, benches).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from memscope.protocol.wire import MAX_BATCH_EVENTS, MEMORY_COLUMNS, WireError

#: An event's ``seq`` in the log is ``(batch seq << SEQ_SHIFT) | index within the batch``.
SEQ_SHIFT = 24
assert MAX_BATCH_EVENTS < 1 << SEQ_SHIFT
#: Bytes per event of a stored ``cols1`` chunk: the widths of ``MEMORY_COLUMNS`` (38).
COLS1_ROW_BYTES = sum(np.dtype(code).itemsize for code in MEMORY_COLUMNS.values())

_DTYPES = {name: np.dtype(code) for name, code in MEMORY_COLUMNS.items()}


def encode_cols1(tid: int, columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Build a ``cols1`` chunk for thread ``tid`` from arrays of equal length."""
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1 or set(columns) != set(_DTYPES):
        raise ValueError(f"need equal-length arrays for exactly {sorted(_DTYPES)}")
    n = lengths.pop()
    cols = {
        name: np.ascontiguousarray(columns[name], dtype=dt).tobytes()
        for name, dt in _DTYPES.items()
    }
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


REC1_MAGIC = 0x31636572
REC1_HEADER = 56
_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
_KIND_FREE = 3
_MAX_DOMAIN = 5


def _rec1_data(chunk: dict[str, Any]) -> bytes:
    data = chunk.get("data")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError("rec1 chunk has no 'data' bytes")
    return bytes(data)


def _decode_rec1(chunk: dict[str, Any]) -> dict[str, np.ndarray]:
    from memscope.protocol import _rec1

    if chunk["n"] > _M32:
        raise WireError(f"rec1 chunk count {chunk['n']} does not fit its 32-bit header field")
    columns = _rec1.decode_rec1(_rec1_data(chunk), chunk["n"])
    return {
        name: np.frombuffer(buf, dtype=dtype)
        for (name, dtype), buf in zip(_DTYPES.items(), columns, strict=True)
    }


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def _unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


class _Reader:
    """Bounds-checked varint reader over one rec1 payload (the pure-Python twin)."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise WireError("data ends before the last record")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self, what: str) -> int:
        value = 0
        for i in range(10):
            if self.pos >= len(self.data):
                raise WireError(f"bad {what} varint")
            byte = self.data[self.pos]
            self.pos += 1
            if i == 9 and byte > 1:
                raise WireError(f"bad {what} varint")
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value
        raise WireError(f"bad {what} varint")


def _rec1_header(data: bytes, n: int) -> tuple[int, int, int, int, int, int]:
    if len(data) < REC1_HEADER:
        raise WireError(
            f"rec1 chunk of {len(data)} bytes is shorter than its {REC1_HEADER}-byte header"
        )
    magic, count, tick0, ns0, mult, tick, addr, stack, reserved = struct.unpack_from(
        "<IIQqQQQII", data
    )
    if magic != REC1_MAGIC or reserved != 0:
        raise WireError("rec1 chunk has a bad magic number or reserved field")
    if count != n:
        raise WireError(f"rec1 chunk header counts {count} records but the chunk says n={n}")
    if count > (len(data) - REC1_HEADER) // 2:  # a record is at least 2 bytes
        raise WireError(f"rec1 chunk claims {count} records in {len(data) - REC1_HEADER} bytes")
    return tick0, ns0, mult, tick, addr, stack


def decode_rec1_py(data: bytes, n: int) -> dict[str, np.ndarray]:
    """Decode a rec1 payload in pure Python (slow; the twin of the C decoder, for tests)."""
    tick0, ns0, mult, tick, addr, stack = _rec1_header(data, n)
    rows: dict[str, list[int]] = {name: [] for name in _DTYPES}
    reader = _Reader(data, REC1_HEADER)
    for index in range(n):
        try:
            hdr = reader.byte()
            kind, domain = hdr & 3, (hdr >> 2) & 7
            if hdr & 0x80:
                raise WireError("reserved header bits set")
            if domain > _MAX_DOMAIN:
                raise WireError("unknown domain")
            if not hdr & 0x40:
                tick = (tick + _unzigzag(reader.varint("tick"))) & _M64
            addr = (addr + _unzigzag(reader.varint("address"))) & _M64
            size = reader.varint("size") if kind != _KIND_FREE else 0
            old = (addr + _unzigzag(reader.varint("old-address"))) & _M64 if kind == 2 else 0
            record_stack = 0 if kind == _KIND_FREE else stack
            if hdr & 0x20:
                delta = reader.varint("stack")
                if delta > _M32:
                    raise WireError("bad stack varint")
                stack = record_stack = (stack + _unzigzag(delta)) & _M32
        except WireError as exc:
            raise WireError(f"rec1 record {index} of {n}: {exc}") from None
        rel = (_signed((tick - tick0) & _M64, 64) * mult) >> 32
        rows["ts_ns"].append(_signed((ns0 + rel) & _M64, 64))
        rows["kind"].append(kind)
        rows["domain"].append(domain)
        rows["address"].append(addr)
        rows["old_address"].append(old)
        rows["size"].append(size)
        rows["stack_id"].append(record_stack)
    if reader.pos != len(data):
        raise WireError(f"rec1 record {n} of {n}: trailing bytes after the last record")
    return {name: np.array(values, dtype=_DTYPES[name]) for name, values in rows.items()}


def _decode_rec1_twin(chunk: dict[str, Any]) -> dict[str, np.ndarray]:
    return decode_rec1_py(_rec1_data(chunk), chunk["n"])


_DECODERS = {"cols1": _decode_cols1, "rec1": _decode_rec1}


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


def encode_rec1(tid: int, columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Build a ``rec1`` chunk for thread ``tid`` from arrays of equal length.

    Timestamps are stored as ticks of 1 ns (an identity clock) from a zero start state; the
    chunk decodes to exactly ``columns``.

    Raises:
        ValueError: columns missing or of unequal length, or rows rec1 cannot hold (a kind
            or domain out of range, a free with a size, an old address outside a realloc).
    """
    from memscope.protocol import _rec1

    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1 or set(columns) != set(_DTYPES):
        raise ValueError(f"need equal-length arrays for exactly {sorted(_DTYPES)}")
    arrays = [np.ascontiguousarray(columns[name], dtype=dt) for name, dt in _DTYPES.items()]
    data = _rec1.encode_rec1(*arrays)
    return {"tid": tid, "n": lengths.pop(), "enc": "rec1", "data": data}


def validate_chunk(chunk: dict[str, Any]) -> None:
    """Check a memory chunk without decoding it: raise iff :func:`decode_chunk` would.

    Raises:
        WireError: the chunk is malformed or uses an unknown encoding.
    """
    n = chunk.get("n")
    if not isinstance(n, int) or n < 0:
        raise WireError(f"memory chunk count {n!r} is not a non-negative int")
    enc = chunk.get("enc", "")
    if enc == "rec1":
        from memscope.protocol import _rec1

        if n > _M32:
            raise WireError(f"rec1 chunk count {n} does not fit its 32-bit header field")
        data = chunk.get("data")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise WireError("rec1 chunk has no 'data' bytes")
        _rec1.validate_rec1(data, n)
        return
    decode_chunk(chunk)  # cols1 "decodes" to views of its buffers: the checks are the work


def decode_chunk_py(chunk: dict[str, Any]) -> dict[str, np.ndarray]:
    """:func:`decode_chunk` with the pure-Python rec1 decoder (for tests and debugging)."""
    if chunk.get("enc") == "rec1" and isinstance(chunk.get("n"), int) and chunk["n"] >= 0:
        return _decode_rec1_twin(chunk)
    return decode_chunk(chunk)
