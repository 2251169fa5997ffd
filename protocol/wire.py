"""The wire format between producers and the broker (version :data:`WIRE_VERSION`).

A producer ships **batches**, never single events. One batch is one ZeroMQ message of one
frame (or several: *split batches*, below): a msgpack map (the *envelope*) with string keys::

    {
      "v":        WIRE_VERSION,           # int; the broker rejects any other value
      "schema":   SCHEMA_ID,              # str; names the event tables below
      "producer": "host:pid:start_ns",    # str; unique per traced process (a forked child is new)
      "pid":      int,                    # the traced process id
      "seq":      int,                    # 0, 1, 2, ... per producer; gaps and repeats are counted
      "n":        int,                    # events in this batch: sum(chunk["n"]) + rows in "rec"
      "mem":      [chunk, ...],           # allocator events, compact binary (see below)
      "rec":      {table: {column: [values...]}},   # the rare tables, columnar lists
    }

**Memory chunks** (``"mem"``) carry allocator events of one thread in compact binary form so
that neither side handles them one at a time in Python. Every chunk is a map with ``"tid"``
(int), ``"n"`` (events in it) and ``"enc"`` naming its encoding; :mod:`memscope.protocol.records`
decodes every encoding into the columns of :data:`MEMORY_COLUMNS`:

* ``"cols1"`` -- ``"cols"``: {column: bytes}, each the little-endian array of the column's
  dtype, all of length ``n``. The tracer's promoted allocations in aggregated mode (next to
  its rec1 chunks in the same envelopes); simple producers (the synthetic source, tests).
* ``"rec1"`` -- the tracer's delta/varint record stream; its layout is documented in
  :mod:`memscope.protocol.records` next to its encoder and decoder.

**Rare tables** (``"rec"``) are the low-volume event kinds (process and thread lifecycle,
interned frames and stack nodes, tracked variables, scopes, FFI events, producer statistics):
``{table: {column: list}}`` with every list of one length, columns as in
:mod:`memscope.protocol.log_schema` minus ``pid`` (taken from the envelope).

**Split batches.** The tracer's publisher sends a batch as two frames, so that the large
rec1 bytes are never packed into the envelope (:func:`encode_batch_frames`): frame 0 is the
envelope, and each rec1 chunk whose ``"data"`` is an int ``k`` takes its data from frame
``k``: the whole frame, or, when the chunk also has ``"off"`` and ``"len"`` (ints), that
slice of it. The slices of one frame follow each other from its first byte to its last,
in the chunks' order: every frame after the first is taken whole, by one chunk or by its
slices. Once one chunk of a batch is large, the publisher puts all its rec1 data into one
frame: every frame is a ZeroMQ send that lets go of the GIL, and in a busy program each
such send waits a switch interval (5 ms) to get it back. A spooled batch is
always stored in the one-frame form (:func:`join_frames`).

The broker validates the envelope (:func:`validate_envelope`) before it decodes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

#: Bumped on any incompatible change to the envelope or a chunk encoding.
WIRE_VERSION = 1
#: Names the set of event tables and columns (see memscope.protocol.log_schema).
SCHEMA_ID = "memscope-events/1"

#: Allocator event kinds, as stored in the ``kind`` column.
KIND_ALLOC = 0
KIND_CALLOC = 1
KIND_REALLOC = 2
KIND_FREE = 3
KIND_NAMES = {
    KIND_ALLOC: "alloc",
    KIND_CALLOC: "calloc",
    KIND_REALLOC: "realloc",
    KIND_FREE: "free",
}

#: Allocator domains, as stored in the ``domain`` column.
DOMAIN_RAW = 0  # PyMem_RawMalloc & co.
DOMAIN_MEM = 1  # PyMem_Malloc & co.
DOMAIN_OBJ = 2  # PyObject_Malloc & co.
DOMAIN_NUMPY = 3  # numpy array data (numpy's data-memory handler)
DOMAIN_NATIVE = 4  # malloc/free/mmap of any library (native mode)
DOMAIN_MMAP = 5  # mmap/munmap (native mode)
DOMAIN_NAMES = {
    DOMAIN_RAW: "raw",
    DOMAIN_MEM: "mem",
    DOMAIN_OBJ: "obj",
    DOMAIN_NUMPY: "numpy",
    DOMAIN_NATIVE: "native",
    DOMAIN_MMAP: "mmap",
}

#: Column name -> numpy dtype string of a decoded memory chunk (and of cols1 buffers).
MEMORY_COLUMNS: dict[str, str] = {
    "ts_ns": "<i8",  # monotonic clock, nanoseconds (CLOCK_MONOTONIC domain)
    "kind": "u1",
    "domain": "u1",
    "address": "<u8",
    "old_address": "<u8",  # realloc only, else 0
    "size": "<u8",  # 0 for free
    "stack_id": "<u4",  # node of the producer's interned stack tree; 0 = no Python frame
}

#: Upper bounds that stop a hostile envelope from making the broker allocate absurdly.
MAX_BATCH_EVENTS = 16_000_000
MAX_CHUNKS = 65_536


class WireError(ValueError):
    """A message that is not a valid batch; the text says what is wrong with it."""


@dataclass(frozen=True)
class Envelope:
    """A validated batch envelope (payload still encoded)."""

    producer: str
    pid: int
    seq: int
    n: int
    mem: list[dict[str, Any]] = field(default_factory=list)
    rec: dict[str, dict[str, list[Any]]] = field(default_factory=dict)


def encode_batch(
    producer: str,
    pid: int,
    seq: int,
    mem: list[dict[str, Any]],
    rec: dict[str, dict[str, list[Any]]],
) -> bytes:
    """Pack one batch envelope; ``n`` is computed from the payload."""
    n = sum(int(chunk["n"]) for chunk in mem)
    n += sum(_table_rows(columns) for columns in rec.values())
    envelope = {
        "v": WIRE_VERSION,
        "schema": SCHEMA_ID,
        "producer": producer,
        "pid": pid,
        "seq": seq,
        "n": n,
        "mem": mem,
        "rec": rec,
    }
    return msgpack.packb(envelope, use_bin_type=True)


#: One frame of a message as packed here (the data frame: a view of the tracer's drained
#: buffer, or the chunks' data copied together).
Frame = bytes | bytearray | memoryview

#: A batch whose rec1 chunks are all shorter than this keeps them inside the envelope.
SPLIT_MIN_BYTES = 16 * 1024


def encode_batch_frames(
    producer: str,
    pid: int,
    seq: int,
    mem: list[dict[str, Any]],
    rec: dict[str, dict[str, list[Any]]],
) -> list[Frame]:
    """Pack one batch as a split message.

    The frames are the envelope, then one frame holding the data of all its large rec1
    chunks, each chunk naming its slice (just the envelope when no chunk is large). Chunks as
    the tracer drains them are slices of one bytes object, each with ``"at"``, where its
    slice starts: when the large ones follow each other there, the frame is a view of that
    stretch, with no copy.
    """

    def framed(chunk: dict[str, Any]) -> bool:
        return chunk.get("enc") == "rec1" and isinstance(chunk.get("data"), bytes | memoryview)

    # All rec1 data goes into the frame once one chunk is large: the small ones (a thread's
    # last partial block) then do not break the stretch a view can cover.
    use_frame = any(framed(c) and len(c["data"]) >= SPLIT_MIN_BYTES for c in mem)
    split = []
    large: list[dict[str, Any]] = []
    offset = 0  # in the data frame
    for chunk in mem:
        data = chunk.get("data")
        packed = {k: v for k, v in chunk.items() if k != "at"}
        if use_frame and isinstance(data, bytes | memoryview) and framed(chunk):
            large.append(chunk)
            packed.update(data=1, off=offset, len=len(data))
            offset += len(data)
        elif isinstance(data, memoryview):
            packed["data"] = data.tobytes()
        split.append(packed)
    envelope = encode_batch(producer, pid, seq, split, rec)
    return [envelope, _data_frame(large)] if large else [envelope]


def _data_frame(chunks: list[dict[str, Any]]) -> Frame:
    """The chunks' data, one after the other: a view when they lie so in one object."""
    view = _adjacent_view(chunks)
    if view is not None:
        return view
    # (a bytearray, not bytes.join: the join of over 1 MiB lets go of the GIL, which costs a
    # busy program's publisher a switch interval to get back)
    joined = bytearray()
    for chunk in chunks:
        joined += chunk["data"]
    return joined


def _adjacent_view(chunks: list[dict[str, Any]]) -> memoryview | None:
    """A view of the stretch of one bytes object the chunks' data fill in order, or None."""
    first = chunks[0]["data"]
    start = chunks[0].get("at")
    if not isinstance(first, memoryview) or not isinstance(first.obj, bytes):
        return None
    if not isinstance(start, int):
        return None
    end = start
    for chunk in chunks:
        data = chunk["data"]
        if not isinstance(data, memoryview) or data.obj is not first.obj or chunk.get("at") != end:
            return None
        end += len(data)
    return memoryview(first.obj)[start:end]


def join_frames(frames: Sequence[Frame]) -> bytes:
    """The one-frame form of a split batch (the spool file holds one frame per batch).

    Raises:
        WireError: the frames are not a valid split batch.
    """
    if len(frames) == 1:
        return bytes(frames[0])
    # our own envelope, unpacked without the limits put on a stranger's
    raw = msgpack.unpackb(frames[0], raw=False)
    _attach_frames(raw, frames[1:])
    for chunk in raw["mem"]:
        if isinstance(chunk.get("data"), memoryview):
            chunk["data"] = chunk["data"].tobytes()
    return msgpack.packb(raw, use_bin_type=True)


def _attach_frames(raw: Any, parts: Sequence[Any]) -> None:
    """Put each data frame of a split batch (or its slice) into the chunks that reference it."""
    if len(parts) > MAX_CHUNKS:
        raise WireError(f"{len(parts) + 1} frames (at most {MAX_CHUNKS + 1})")
    mem = raw.get("mem") if isinstance(raw, dict) else None
    if not isinstance(mem, list) or len(mem) > MAX_CHUNKS:
        raise WireError(f"a split batch needs a list of at most {MAX_CHUNKS} memory chunks")
    views = [memoryview(part).cast("B") for part in parts]
    ends = [-1] * len(parts)  # where the slices taken from each frame end so far (-1: none)
    for chunk in mem:
        if not isinstance(chunk, dict) or chunk.get("enc") != "rec1":
            continue  # only rec1 data is sent in frames of its own
        ref = chunk.get("data")
        if isinstance(ref, bool) or not isinstance(ref, int):
            continue
        if not 1 <= ref <= len(parts):
            raise WireError(f"a chunk takes frame {ref} of a {len(parts) + 1}-frame message")
        view = views[ref - 1]
        sliced = "off" in chunk or "len" in chunk
        if not sliced:
            if ends[ref - 1] >= 0:
                raise WireError(f"frame {ref} is taken by two chunks")
            ends[ref - 1] = len(view)
            chunk["data"] = parts[ref - 1]
            continue
        ends[ref - 1] = _take_slice(chunk, ref, view, max(ends[ref - 1], 0))
    for index, (end, view) in enumerate(zip(ends, views, strict=True)):
        if end < 0:
            raise WireError(f"frame {index + 1} of {len(parts) + 1} is taken by no chunk")
        if end != len(view):
            raise WireError(f"frame {index + 1}: its chunks take {end} of its {len(view)} bytes")


def _take_slice(chunk: dict[str, Any], ref: int, view: memoryview, taken: int) -> int:
    """Give ``chunk`` its slice of frame ``ref`` (``taken`` bytes of it are taken); its end."""
    off, length = chunk.pop("off", None), chunk.pop("len", None)
    if type(off) is not int or type(length) is not int:
        raise WireError(f"a slice of frame {ref} has a bad offset or length")
    if off != taken or length < 0 or off + length > len(view):
        raise WireError(
            f"slice {off}+{length} of frame {ref} ({len(view)} bytes) does not start where "
            f"the slices before it end ({taken}) or runs past its end"
        )
    chunk["data"] = view[off : off + length]
    return off + length


def _table_rows(columns: dict[str, list[Any]]) -> int:
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise WireError(f"columns of unequal length {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def decode_envelope(message: bytes, parts: list[Any] | None = None) -> Envelope:
    """Unpack and validate one message; raise :class:`WireError` saying why it is rejected.

    ``parts`` are the data frames of a split batch (any buffers).
    """
    raw = _unpack(message)
    if parts:
        _attach_frames(raw, parts)
    return validate_envelope(raw)


def _unpack(message: bytes) -> Any:
    try:
        return msgpack.unpackb(
            message,
            raw=False,
            strict_map_key=True,
            max_bin_len=1 << 30,
            max_str_len=1 << 24,
            max_array_len=MAX_BATCH_EVENTS,
            max_map_len=1 << 16,
        )
    except Exception as exc:  # noqa: BLE001 -- msgpack raises many unrelated types on bad input
        raise WireError(f"not a msgpack envelope: {type(exc).__name__}: {exc}") from None


def _require(raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in raw:
        raise WireError(f"envelope has no {key!r}")
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise WireError(f"envelope {key!r} has type {type(value).__name__}")
    return value


def validate_envelope(raw: Any) -> Envelope:
    """Check the envelope's version, identity fields and counts (not the chunk bytes)."""
    if not isinstance(raw, dict):
        raise WireError(f"envelope is a {type(raw).__name__}, not a map")
    version = _require(raw, "v", int)
    if version != WIRE_VERSION:
        raise WireError(f"wire version {version} (this broker reads {WIRE_VERSION})")
    if _require(raw, "schema", str) != SCHEMA_ID:
        raise WireError(f"schema {raw['schema']!r} (this broker reads {SCHEMA_ID!r})")
    producer = _require(raw, "producer", str)
    pid = _require(raw, "pid", int)
    seq = _require(raw, "seq", int)
    n = _require(raw, "n", int)
    if not producer or len(producer) > 512:
        raise WireError("producer id is empty or longer than 512 characters")
    if not 0 < pid < 1 << 32 or seq < 0 or not 0 <= n <= MAX_BATCH_EVENTS:
        raise WireError(f"pid {pid}, seq {seq} or n {n} out of range")
    mem = _require(raw, "mem", list)
    rec = _require(raw, "rec", dict)
    if len(mem) > MAX_CHUNKS:
        raise WireError(f"{len(mem)} memory chunks (at most {MAX_CHUNKS})")
    total = 0
    for chunk in mem:
        if not isinstance(chunk, dict):
            raise WireError("a memory chunk is not a map")
        total += _require(chunk, "n", int)
        _require(chunk, "tid", int)
        _require(chunk, "enc", str)
    for table, columns in rec.items():
        if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
            raise WireError(f"rare table {table!r} is not a map of column lists")
        total += _table_rows(columns)
    if total != n:
        raise WireError(f"envelope says n={n} but its payload holds {total} events")
    return Envelope(producer=producer, pid=pid, seq=seq, n=n, mem=mem, rec=rec)
