"""The event log's tables: their Arrow schemas and the log directory layout.

``LOG_FORMAT_VERSION`` is written into every manifest and every segment's schema metadata;
readers refuse a log of a version they do not know (:data:`READABLE_VERSIONS`) with a message
naming both. Version 2 added the ``memory_chunks`` table (a reader of version 1 would miss the
memory events stored there); a version 1 log is read as before (it has no such table).

Layout of a log directory (``<run>/events/``)::

    manifest.json                     # format, version, log_id, created_ns, segments[...]
    <table>/<table>-<NNNNNN>.arrow    # Arrow IPC *file* format, one table per file
    _broker/                          # the broker's private commit journal and its own log

The broker writes each segment as an IPC file and flushes after every record batch. A cleanly
closed segment has its footer, so pyarrow datasets (and DuckDB through them) read it lazily.
A segment cut short by a crash, or still being written, has no footer: the IPC file format is
the 8-byte magic followed by the IPC stream, so a reader opens it as a stream from byte 8 and
gets every complete record batch. The manifest lists every segment with its table, row count
and whether it was closed cleanly; a reader also picks up segment files the manifest has not
caught up with yet.

Tables (``pid`` is added by the broker from the envelope; every other column comes from the
producer). Memory events are the hot table; all others are small.

**Memory events are stored in two forms**; the memory events of a log are the rows of the
columnar ``memory`` table followed by the decoded rows of ``memory_chunks``
(:meth:`memscope.eventlog.log.LogReader.memory_batches` streams both in log order). A broker
writes only one of them, so its log keeps every memory event in arrival order:

* ``memory`` (schema :data:`MEMORY`): one row per event, columnar. The broker writes it with
  ``log_memory = "columns"`` (every chunk decoded); format 1 logs and logs built by hand
  (``LogWriter.append("memory", ...)``) use it.
* ``memory_chunks`` (schema :data:`MEMORY_CHUNKS`): one row per memory chunk
  (``log_memory = "chunks"``, the default), for both encodings: the real tracer sends ``rec1``
  chunks and, in aggregated mode, its promoted allocations as ``cols1`` chunks in the same
  envelopes (synthetic producers and tests send ``cols1`` too). The broker checks every chunk
  (``rec1``: a bounds-checked scan, ``_rec1.validate_rec1``, accepted iff the decoder would
  accept it; ``cols1``: every column of ``n`` values) and never builds its columns; readers
  decode it. Columns:

  ==============  ======  ================================================================
  pid             u32     the producer's process (from the envelope)
  tid             u64     the chunk's thread (``chunk["tid"]``)
  batch_seq       u64     the envelope's batch seq
  first_index     u32     index of the chunk's first event among the batch's memory events
                          (chunks in envelope order); event i of the chunk has
                          ``seq = (batch_seq << 24) | (first_index + i)``, as in ``memory``
  n               u32     events in the chunk
  encoding        string  the chunk's encoding: ``"rec1"`` or ``"cols1"``
  data            binary  ``rec1``: the chunk's bytes as received: the 56-byte rec1 header
                          (record count, clock calibration, the delta state before the first
                          record) and the records; layout in :mod:`memscope.protocol.records`.
                          ``cols1``: the chunk's seven column arrays concatenated in the
                          order of ``MEMORY_COLUMNS`` (ts_ns i64, kind u8, domain u8,
                          address u64, old_address u64, size u64, stack_id u32; little-endian),
                          exactly ``n * 38`` bytes
  ==============  ======  ================================================================

  The rec1 payload is already compact (delta/varint, about 4-7 bytes per event); its segments are
  compressed with ``log_chunk_compression`` (see ``config/default.toml``).
"""

from __future__ import annotations

import pyarrow as pa

LOG_FORMAT_VERSION = 2
#: Versions this code reads (1: before ``memory_chunks``; read the same way).
READABLE_VERSIONS = (1, 2)
LOG_FORMAT_NAME = "memscope-log"

_u32, _u64, _i64, _i32, _u8 = pa.uint32(), pa.uint64(), pa.int64(), pa.int32(), pa.uint8()
_str = pa.string()

#: Allocator events. ``seq`` is the event's position within its producer (broker-assigned):
#: ``(batch seq << 24) | index in the batch``, unique per producer and increasing in the
#: producer's order even when a replay makes batches arrive out of order.
MEMORY = pa.schema(
    [
        ("pid", _u32),
        ("tid", _u64),
        ("seq", _u64),
        ("ts_ns", _i64),
        ("kind", _u8),  # memscope.protocol.wire.KIND_*
        ("domain", _u8),  # memscope.protocol.wire.DOMAIN_*
        ("address", _u64),
        ("old_address", _u64),  # realloc: the block it replaced; else 0
        ("size", _u64),
        ("stack_id", _u32),
    ]
)

#: Memory events as the producer encoded them, one row per chunk (see the module docs).
MEMORY_CHUNKS = pa.schema(
    [
        ("pid", _u32),
        ("tid", _u64),
        ("batch_seq", _u64),
        ("first_index", _u32),
        ("n", _u32),
        ("encoding", _str),
        ("data", pa.binary()),
    ]
)

#: Process lifecycle: one row at start, one at exit (event = "start" | "exit").
PROCESSES = pa.schema(
    [
        ("pid", _u32),
        ("ts_ns", _i64),
        ("event", _str),
        ("ppid", _u32),
        ("host", _str),
        ("producer", _str),
        ("argv", pa.list_(_str)),
        ("executable", _str),
        ("python", _str),
        ("mode", _str),  # full | aggregated | sampled
        ("sample_bytes", _u64),  # sampled mode: mean bytes between samples; else null
        ("exit_code", _i32),  # exit rows only
    ]
)

#: Thread lifecycle (event = "start" | "name" | "exit").
THREADS = pa.schema(
    [
        ("pid", _u32),
        ("tid", _u64),
        ("ts_ns", _i64),
        ("event", _str),
        ("native_id", _u64),
        ("name", _str),
    ]
)

#: Interned frames: (code object, instruction offset) resolved to a source line.
FRAMES = pa.schema(
    [
        ("pid", _u32),
        ("frame_id", _u32),
        ("function", _str),
        ("filename", _str),
        ("lineno", _i32),
    ]
)

#: Interned stack tree: stack_id -> (parent stack_id, innermost frame). 0 is the empty stack.
STACKS = pa.schema(
    [
        ("pid", _u32),
        ("stack_id", _u32),
        ("parent_id", _u32),
        ("frame_id", _u32),
    ]
)

#: Objects registered with track_var. ``address`` is the object's allocation block (its death
#: is the free of that block); ``object_id`` is id(obj). ``contains`` lists var_ids of tracked
#: objects reachable from this one when it was tracked.
VARIABLES = pa.schema(
    [
        ("pid", _u32),
        ("tid", _u64),
        ("ts_ns", _i64),
        ("var_id", _u64),
        ("name", _str),
        ("type_name", _str),
        ("object_id", _u64),
        ("address", _u64),
        ("size", _u64),
        ("deep_size", _u64),
        ("scope", _str),
        ("scope_id", _u64),
        ("stack_id", _u32),
        ("contains", pa.list_(_u64)),
    ]
)

#: Named scopes (event = "enter" | "exit").
SCOPES = pa.schema(
    [
        ("pid", _u32),
        ("tid", _u64),
        ("ts_ns", _i64),
        ("event", _str),
        ("scope_id", _u64),
        ("parent_id", _u64),
        ("name", _str),
    ]
)

#: FFI boundary events (ctypes audit events and the like); details is a JSON object.
FFI = pa.schema(
    [
        ("pid", _u32),
        ("tid", _u64),
        ("ts_ns", _i64),
        ("event", _str),
        ("details", _str),
        ("stack_id", _u32),
    ]
)

#: The tracer's own cost, cumulative at ts_ns.
PRODUCER_STATS = pa.schema(
    [
        ("pid", _u32),
        ("ts_ns", _i64),
        ("events", _u64),
        ("bytes", _u64),
        ("drops", _u64),
        ("buffer_high_water", _u64),
        ("batches", _u64),
        ("spooled", _u64),
        # Measured in-process where the mode keeps a live map (aggregated); else null.
        ("current_bytes", _u64),
        ("peak_bytes", _u64),
    ]
)

#: Aggregated mode: short-lived alloc/free pairs folded at the source, per stack and domain,
#: for the interval ending at ts_ns (counts and bytes of the folded pairs).
AGGREGATES = pa.schema(
    [
        ("pid", _u32),
        ("tid", _u64),
        ("ts_ns", _i64),
        ("stack_id", _u32),
        ("domain", _u8),
        ("alloc_count", _u64),
        ("alloc_bytes", _u64),
    ]
)

#: Written by the broker itself: cumulative per-producer ingest counters at ts_ns.
#: ``events`` counts memory (allocator) events, like ``producer_stats.events``; ``rows``
#: counts the rows of every table the producer's batches carried (events + rare rows).
#: ``rejected`` counts whole messages refused as malformed, ``rejected_rows`` single rows
#: dropped by the schema check (:mod:`memscope.broker.rowcheck`), ``refused`` batches not
#: taken because the log could not be written (the producer keeps and resends them);
#: ``problem`` is the latest reason for any of these (null when none). The last three
#: columns came after format version 2 was first written: older logs read them as null.
INGEST = pa.schema(
    [
        ("ts_ns", _i64),
        ("producer", _str),
        ("pid", _u32),
        ("batches", _u64),
        ("events", _u64),
        ("rows", _u64),
        ("gaps", _u64),
        ("duplicates", _u64),
        ("rejected", _u64),
        ("rejected_rows", _u64),
        ("refused", _u64),
        ("problem", _str),
    ]
)

#: Table name -> schema. Rare-table names are also the keys of an envelope's "rec" map.
TABLES: dict[str, pa.Schema] = {
    "memory": MEMORY,
    "processes": PROCESSES,
    "threads": THREADS,
    "frames": FRAMES,
    "stacks": STACKS,
    "variables": VARIABLES,
    "scopes": SCOPES,
    "ffi": FFI,
    "producer_stats": PRODUCER_STATS,
    "aggregates": AGGREGATES,
    "ingest": INGEST,
    "memory_chunks": MEMORY_CHUNKS,
}

#: Tables a producer may send in an envelope's "rec" map (``ingest`` is the broker's own).
PRODUCER_RECORD_TABLES = tuple(
    name for name in TABLES if name not in ("memory", "ingest", "memory_chunks")
)
