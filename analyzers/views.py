"""DuckDB over an event log: the SQL views that every analyzer and ``memscope query`` use.

:func:`connect` registers each log table (a lazy pyarrow dataset) as ``raw_<table>`` and
defines the views below on top of it; :func:`connect_tables` does the same over in-memory
Arrow tables (tests). The exception is ``raw_memory`` of a log whose memory events the broker
stored as chunks: they must be decoded, so :func:`connect` copies every one into a DuckDB
table (spilling to a temporary directory beyond the memory limit) unless told
``raw_memory=False``; see its docstring for the cheaper forms.

Public views (``memscope query`` documents them too):

``events``
    every allocator event; ``kind`` and ``domain`` as strings (``alloc``, ``calloc``,
    ``realloc``, ``free``; ``raw``, ``mem``, ``obj``, ``numpy``, ``native``, ``mmap``).
``allocations``
    one row per block: every alloc/calloc, and every realloc's new block. ``free_ts_ns`` is the
    time of the event that ended the block -- a free of its address or a realloc that moved or
    resized it -- and NULL while it is alive. ``end_kind`` says which (``free``, ``realloc``),
    or ``reused`` when the address was handed out again with no free in between (a free the
    log does not hold, e.g. dropped); a reused block is not alive but has no ``free_ts_ns``.
``frees``
    one row per block end (free, or the old block of a realloc) with ``matched`` and, when
    matched, the allocation it ended (``alloc_ts_ns``, ``size``, ``alloc_domain``).
``lifetimes``
    the ended allocations with ``lifetime_ns``.
``processes``
    one row per pid: ppid, host, producer, argv, executable, python, mode, sample_bytes,
    start_ts_ns, end_ts_ns, exit_code.
``threads``
    one row per (pid, tid): native_id, name (the latest), start_ts_ns, end_ts_ns.
``variables``
    every ``track_var`` record with ``died_ts_ns`` = the first end (free or realloc) of the
    variable's ``address`` block at or after it was tracked, ``lifetime_ns``, ``alive_at_end``.
``scopes``
    one row per scope: pid, tid, scope_id, parent_id, name, enter_ts_ns, exit_ts_ns.
``frames``
    one row per frame of every interned stack: pid, stack_id, depth (0 = innermost, where the
    allocation happened), function, filename, lineno; resolved through the interned stack tree
    with a recursive CTE (depth-limited, so a corrupt tree cannot loop).
``stacks``
    one row per stack: pid, stack_id, depth (number of frames), the innermost frame's
    function/filename/lineno, ``location`` ("function (file:line)") and ``trace`` (innermost
    first).
``ffi``, ``aggregates``, ``producer_stats``
    the raw rows (``aggregates.domain`` as a string).
``producer_stats_latest``
    the latest cumulative tracer counters per pid.
``ingest``
    the broker's latest counters per producer.

Block matching is a window over the memory events partitioned by (pid, address) and ordered
by (ts_ns, seq, ends-before-starts), so a realloc in place ends the old block before it
starts the new one. Over a bare :func:`connect` the views compute it on every query (fine for
``memscope query``); :func:`materialize` does it once, chunk by chunk with a carried state
(:mod:`memscope.analyzers.blocks`), and points ``_allocations``/``_notable_ends`` at the
result, which is what the analyzers read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from memscope.analyzers.block_sql import START, allocations_select, ends_select
from memscope.analyzers.blocks import CHUNK_ROWS, BlockMatcher, memory_batches
from memscope.analyzers.fold import LIVE
from memscope.analyzers.state import open_state
from memscope.protocol.log_schema import MEMORY, TABLES
from memscope.protocol.wire import (
    DOMAIN_NAMES,
    KIND_ALLOC,
    KIND_CALLOC,
    KIND_FREE,
    KIND_NAMES,
    KIND_REALLOC,
)

#: connection -> the LogReader it was opened on (so materialize() can stream the log).
_READERS: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, Any] = weakref.WeakKeyDictionary()

#: Frames deeper than this are not resolved (guards against a cyclic, corrupt stack tree).
MAX_STACK_DEPTH = 512


def _case(column: str, names: Mapping[int, str]) -> str:
    # The codes and names are memscope's own constants, never user input.
    arms = " ".join(f"WHEN {int(code)} THEN '{name}'" for code, name in sorted(names.items()))
    return f"CASE {column} {arms} ELSE 'unknown_' || CAST({column} AS VARCHAR) END"


def _chain_select(source: str, starts_and_notable_only: bool = False) -> str:
    keep = (
        f"""WHERE code >= {START} OR pc IS NULL OR pc < {START}
              OR ((pc >> 3) & 15) <> ((code >> 3) & 15)"""
        if starts_and_notable_only
        else ""
    )
    return f"""
        SELECT * FROM (
            SELECT *, LEAD(code) OVER w AS nc, LEAD(ts_ns) OVER w AS nts, LEAD(seq) OVER w AS nseq,
                LAG(code) OVER w AS pc, LAG(code, 2) OVER w AS pc2,
                LAG(ts_ns) OVER w AS pts, LAG(ts_ns, 2) OVER w AS pts2
            FROM {source}
            WINDOW w AS (PARTITION BY pid, address ORDER BY ts_ns, seq, code >= {START}))
        {keep}"""


def _block_events_sql(source: str) -> str:
    """Block starts and ends of a memory relation, keyed by the block's address.

    Every alloc/calloc and realloc's new block is a start (``code`` bit 7 set); every free,
    and the old block of a realloc, is an end.
    """
    starts = f"kind IN ({KIND_ALLOC}, {KIND_CALLOC}, {KIND_REALLOC}) AND address <> 0"
    return f"""
        SELECT pid, tid, seq, ts_ns, address, size, stack_id,
               ({START} | (domain << 3) | kind)::UTINYINT AS code
        FROM {source} WHERE {starts}
        UNION ALL
        SELECT pid, tid, seq, ts_ns,
               CASE WHEN kind = {KIND_FREE} THEN address ELSE old_address END AS address,
               size, stack_id, ((domain << 3) | kind)::UTINYINT AS code
        FROM {source}
        WHERE (kind = {KIND_FREE} AND address <> 0)
           OR (kind = {KIND_REALLOC} AND old_address <> 0)"""


def _variables_select() -> str:
    """track_var records with their death: the first free of their block after tracking."""
    return f"""
        WITH tracked AS (SELECT DISTINCT pid, address FROM raw_variables),
        ends AS (
            SELECT pid, address, free_ts_ns AS ts_ns FROM _allocations
            WHERE free_kind = {KIND_FREE} AND (pid, address) IN (SELECT * FROM tracked)
            UNION ALL
            SELECT pid, address, ts_ns FROM _notable_ends
            WHERE kind = {KIND_FREE} AND NOT matched AND (pid, address) IN (SELECT * FROM tracked))
        SELECT v.pid, v.tid, v.var_id, v.name, v.type_name, v.object_id, v.address, v.size,
            v.deep_size, v.scope, v.scope_id, v.stack_id, v.contains,
            v.ts_ns AS created_ts_ns, e.ts_ns AS died_ts_ns,
            e.ts_ns - v.ts_ns AS lifetime_ns, e.ts_ns IS NULL AS alive_at_end
        FROM raw_variables v ASOF LEFT JOIN ends e
            ON v.pid = e.pid AND v.address = e.address AND e.ts_ns >= v.ts_ns"""


def _view_sql() -> list[str]:
    kind = _case("kind", KIND_NAMES)
    domain = _case("domain", DOMAIN_NAMES)
    return [
        f"""CREATE OR REPLACE VIEW events AS
        SELECT pid, tid, seq, ts_ns, {kind} AS kind, {domain} AS domain, address, old_address,
               size, stack_id, kind AS kind_code, domain AS domain_code
        FROM raw_memory""",
        # Block starts and ends keyed by the block's address (see START for ``code``).
        f"CREATE OR REPLACE VIEW _block_events AS {_block_events_sql('raw_memory')}",
        f"CREATE OR REPLACE VIEW _block_chain AS {_chain_select('_block_events')}",
        # Internal, code-valued forms; materialize() replaces them by tables.
        f"CREATE OR REPLACE VIEW _allocations AS {allocations_select('_block_chain')}",
        f"CREATE OR REPLACE VIEW _ends AS {ends_select('_block_chain')}",
        f"CREATE OR REPLACE VIEW _notable_ends AS {ends_select('_block_chain', True)}",
        f"""CREATE OR REPLACE VIEW allocations AS
        SELECT pid, tid, seq, ts_ns, {kind} AS kind, {domain} AS domain, address, size, stack_id,
            free_ts_ns, {_case("free_domain", DOMAIN_NAMES)} AS free_domain,
            CASE WHEN free_kind = {KIND_FREE} THEN 'free'
                 WHEN free_kind = {KIND_REALLOC} THEN 'realloc'
                 WHEN reused_ts_ns IS NOT NULL THEN 'reused' END AS end_kind,
            free_ts_ns - ts_ns AS lifetime_ns,
            kind AS kind_code, domain AS domain_code
        FROM _allocations""",
        f"""CREATE OR REPLACE VIEW frees AS
        SELECT e.pid, e.tid, e.seq, e.ts_ns, {_case("e.kind", KIND_NAMES)} AS kind,
            {_case("e.domain", DOMAIN_NAMES)} AS domain, e.address, e.stack_id, e.matched,
            e.alloc_ts_ns, a.size, {_case("e.alloc_domain", DOMAIN_NAMES)} AS alloc_domain,
            a.stack_id AS alloc_stack_id, a.tid AS alloc_tid, e.repeated_end
        FROM _ends e LEFT JOIN _allocations a
            ON a.pid = e.pid AND a.address = e.address AND a.ts_ns = e.alloc_ts_ns""",
        """CREATE OR REPLACE VIEW lifetimes AS
        SELECT * FROM allocations WHERE free_ts_ns IS NOT NULL""",
        """CREATE OR REPLACE VIEW processes AS
        WITH s AS (SELECT * FROM raw_processes WHERE event = 'start'
                   QUALIFY row_number() OVER (PARTITION BY pid ORDER BY ts_ns) = 1),
             e AS (SELECT * FROM raw_processes WHERE event = 'exit'
                   QUALIFY row_number() OVER (PARTITION BY pid ORDER BY ts_ns DESC) = 1)
        SELECT coalesce(s.pid, e.pid) AS pid, coalesce(s.ppid, e.ppid) AS ppid,
            coalesce(s.host, e.host) AS host, coalesce(s.producer, e.producer) AS producer,
            coalesce(s.argv, e.argv) AS argv, coalesce(s.executable, e.executable) AS executable,
            coalesce(s.python, e.python) AS python, coalesce(s.mode, e.mode) AS mode,
            coalesce(s.sample_bytes, e.sample_bytes) AS sample_bytes,
            s.ts_ns AS start_ts_ns, e.ts_ns AS end_ts_ns, e.exit_code AS exit_code
        FROM s FULL OUTER JOIN e ON s.pid = e.pid""",
        """CREATE OR REPLACE VIEW threads AS
        SELECT pid, tid, max(native_id) AS native_id,
            arg_max(name, ts_ns) FILTER (WHERE name IS NOT NULL) AS name,
            min(ts_ns) FILTER (WHERE event = 'start') AS start_ts_ns,
            max(ts_ns) FILTER (WHERE event = 'exit') AS end_ts_ns
        FROM raw_threads GROUP BY pid, tid""",
        f"CREATE OR REPLACE VIEW variables AS {_variables_select()}",
        """CREATE OR REPLACE VIEW scopes AS
        SELECT pid, scope_id, any_value(tid) AS tid, any_value(parent_id) AS parent_id,
            any_value(name) AS name,
            min(ts_ns) FILTER (WHERE event = 'enter') AS enter_ts_ns,
            max(ts_ns) FILTER (WHERE event = 'exit') AS exit_ts_ns
        FROM raw_scopes GROUP BY pid, scope_id""",
        f"""CREATE OR REPLACE VIEW frames AS
        WITH RECURSIVE walk(pid, stack_id, node, depth) AS (
            SELECT pid, stack_id, stack_id, 0 FROM raw_stacks
            UNION ALL
            SELECT w.pid, w.stack_id, s.parent_id, w.depth + 1
            FROM walk w JOIN raw_stacks s ON s.pid = w.pid AND s.stack_id = w.node
            WHERE s.parent_id <> 0 AND w.depth < {MAX_STACK_DEPTH})
        SELECT w.pid, w.stack_id, w.depth, f.function, f.filename, f.lineno, f.frame_id
        FROM walk w
        JOIN raw_stacks s ON s.pid = w.pid AND s.stack_id = w.node
        JOIN raw_frames f ON f.pid = s.pid AND f.frame_id = s.frame_id""",
        """CREATE OR REPLACE VIEW stacks AS
        SELECT pid, stack_id, count(*) AS depth,
            arg_min(function, depth) AS function, arg_min(filename, depth) AS filename,
            arg_min(lineno, depth) AS lineno,
            arg_min(function || ' (' || filename || ':' || lineno || ')', depth) AS location,
            list(function || ' (' || filename || ':' || lineno || ')' ORDER BY depth) AS trace
        FROM frames GROUP BY pid, stack_id""",
        "CREATE OR REPLACE VIEW ffi AS SELECT * FROM raw_ffi",
        # Every pid with process rows or blocks.
        """CREATE OR REPLACE VIEW _pids AS
        SELECT pid FROM processes UNION SELECT DISTINCT pid FROM _allocations""",
        f"""CREATE OR REPLACE VIEW aggregates AS
        SELECT pid, tid, ts_ns, stack_id, {domain} AS domain, alloc_count, alloc_bytes
        FROM raw_aggregates""",
        "CREATE OR REPLACE VIEW producer_stats AS SELECT * FROM raw_producer_stats",
        """CREATE OR REPLACE VIEW producer_stats_latest AS
        SELECT * FROM raw_producer_stats
        QUALIFY row_number() OVER (PARTITION BY pid ORDER BY ts_ns DESC, events DESC) = 1""",
        """CREATE OR REPLACE VIEW ingest AS
        SELECT producer, pid, batches, events, gaps, duplicates, rejected, rejected_rows,
               refused, problem, ts_ns
        FROM raw_ingest
        QUALIFY row_number() OVER (PARTITION BY producer ORDER BY ts_ns DESC, batches DESC) = 1""",
    ]


def _state_view_sql() -> list[str]:
    """Views over the analysis state (``state_<table>``, :mod:`memscope.analyzers.state`)."""
    domain = _case("domain", DOMAIN_NAMES)
    return [
        f"""CREATE OR REPLACE VIEW sites AS
        SELECT pid, stack_id, {domain} AS domain, allocations, bytes_allocated, frees,
            bytes_freed, live_blocks, live_bytes, reused AS unrecorded_frees, temporary_count,
            temporary_bytes, domain AS domain_code
        FROM state_sites""",
        f"""CREATE OR REPLACE VIEW live AS
        SELECT pid, tid, seq, ts_ns, address, size, {domain} AS domain, stack_id,
            domain AS domain_code
        FROM state_blocks WHERE state = {LIVE}""",
        f"""CREATE OR REPLACE VIEW peak_sites AS
        SELECT pid, stack_id, {domain} AS domain, peak_blocks AS blocks, peak_bytes AS bytes,
            all_peak_blocks, all_peak_bytes, domain AS domain_code
        FROM state_sites WHERE peak_blocks > 0 OR all_peak_blocks > 0""",
        """CREATE OR REPLACE VIEW timeline AS
        SELECT t.pid, p.origin_ts_ns + t.bucket * p.width_ns AS start_ts_ns,
            p.width_ns AS width_ns, t.events, t.allocations, t.frees, t.bytes_allocated,
            t.bytes_freed, t.live_bytes, t.max_live_bytes
        FROM state_timeline t JOIN state_processes p ON p.pid = t.pid""",
        """CREATE OR REPLACE VIEW lifetimes_hist AS
        SELECT pid, CASE WHEN bucket = 0 THEN 0 ELSE (1::HUGEINT << (bucket - 1)) END AS min_ns,
            CASE WHEN bucket = 0 THEN 0 ELSE (1::HUGEINT << bucket) - 1 END AS max_ns,
            count, bytes
        FROM state_lifetimes""",
        """CREATE OR REPLACE VIEW process_totals AS
        SELECT pid, allocations, bytes_allocated, frees, bytes_freed, live_blocks, live_bytes,
            peak_bytes, CASE WHEN peak_ts_ns >= 0 THEN peak_ts_ns END AS peak_ts_ns,
            reused AS unrecorded_frees, unmatched_frees, repeated_ends, domain_mismatches,
            interior_frees, first_ts_ns, last_ts_ns
        FROM state_processes""",
        """CREATE OR REPLACE VIEW thread_totals AS
        SELECT pid, tid, allocations, bytes_allocated, frees, live_blocks, live_bytes
        FROM state_threads""",
        "CREATE OR REPLACE VIEW sizes AS SELECT pid, size, count FROM state_sizes",
        """CREATE OR REPLACE VIEW variables AS
        SELECT v.pid, v.tid, v.var_id, v.name, v.type_name, v.object_id, v.address, v.size,
            v.deep_size, v.scope, v.scope_id, v.stack_id, v.contains,
            v.ts_ns AS created_ts_ns, e.ts_ns AS died_ts_ns,
            e.ts_ns - v.ts_ns AS lifetime_ns, e.ts_ns IS NULL AS alive_at_end
        FROM raw_variables v ASOF LEFT JOIN state_deaths e
            ON v.pid = e.pid AND v.address = e.address AND e.ts_ns >= v.ts_ns""",
        """CREATE OR REPLACE VIEW _pids AS
        SELECT pid FROM processes UNION SELECT pid FROM state_processes""",
    ]


#: Views over the analysis state (in the order ``memscope query`` lists them).
STATE_VIEWS = (
    "sites",
    "live",
    "peak_sites",
    "timeline",
    "lifetimes_hist",
    "process_totals",
    "thread_totals",
    "sizes",
)


def use_state(
    con: duckdb.DuckDBPyConnection, tables: Mapping[str, pa.Table], views: bool = True
) -> None:
    """Register the analysis state's tables (``state_<name>``) and the views over them.

    ``variables`` then takes each tracked object's death from the state, and the small views
    the analyzers read repeatedly are stored as tables (:func:`freeze`). ``views=False``
    registers only the tables given (a reader of a few of them, such as the totals).
    """
    for name, table in tables.items():
        con.execute(f"DROP VIEW IF EXISTS state_{name}")
        con.register(f"state_{name}", table)
    if not views:
        return
    for sql in _state_view_sql():
        con.execute(sql)
    for name in ("variables", "_pids", "processes"):  # processes: a lazy dataset, re-scanned
        _store_view(con, name)


#: The views a user may query (in the order ``memscope query`` lists them).
PUBLIC_VIEWS = (
    "events",
    "allocations",
    "frees",
    "lifetimes",
    "processes",
    "threads",
    "variables",
    "scopes",
    "frames",
    "stacks",
    "ffi",
    "aggregates",
    "producer_stats",
    "producer_stats_latest",
    "ingest",
)


def analysis_memory_limit() -> str:
    """DuckDB's memory limit from the ``analysis_memory_mb`` setting (``"1000MB"``)."""
    from memscope.config import load_settings

    return f"{load_settings().analysis_memory_mb}MB"


def _new_connection(memory_limit: str | None, threads: int | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    # Spills go to a directory of our own, removed with the connection (DuckDB's default is
    # ./.tmp in the current directory, left behind).
    spill = tempfile.mkdtemp(prefix="memscope-duckdb-")
    weakref.finalize(con, shutil.rmtree, spill, True)
    con.execute("SET temp_directory = ?", [spill])
    con.execute("SET memory_limit = ?", [memory_limit or analysis_memory_limit()])
    con.execute("SET preserve_insertion_order = false")
    if threads:
        con.execute("SET threads = ?", [int(threads)])
    return con


def _define(con: duckdb.DuckDBPyConnection, sources: Mapping[str, Any]) -> None:
    """Bind every ``raw_<table>`` to its source and (re)create the views.

    A source is an Arrow object (table, dataset) or the name of a DuckDB table (a ``str``);
    a missing one is an empty table of the schema.
    """
    for name, schema in TABLES.items():
        source = sources.get(name)
        if source is None:
            source = pa.table({f.name: pa.array([], f.type) for f in schema}, schema=schema)
        con.execute(f"DROP VIEW IF EXISTS raw_{name}")
        if isinstance(source, str):
            con.execute(f"CREATE TEMP VIEW raw_{name} AS SELECT * FROM {source}")
        else:
            con.register(f"raw_{name}", source)
    for sql in _view_sql():
        con.execute(sql)


#: The DuckDB table holding a log's memory events when some are stored as chunks.
DECODED_MEMORY = "_decoded_memory"


def _memory_source(
    con: duckdb.DuckDBPyConnection,
    reader: Any,
    decode: bool,
    fill: bool = True,
    on_events: Callable[[int], None] | None = None,
) -> Any:
    """What ``raw_memory`` reads: the log's lazy dataset, or its events decoded into DuckDB.

    Chunks stored by the broker (``memory_chunks``) must be decoded; DuckDB needs a source it
    can scan more than once (self-joins), so they are decoded once into a DuckDB table, which
    spills to disk under the memory limit (``fill=False``: the table is created empty, for
    the caller to fill, :func:`_copied`). Without ``decode`` raw_memory is empty.
    ``on_events`` is called with the events decoded so far (progress).
    """
    if not decode:
        return None
    if not reader.chunk_events():
        return reader.dataset("memory")
    stream = reader.memory_reader() if fill else pa.RecordBatchReader.from_batches(MEMORY, iter(()))
    if fill and on_events is not None:
        stream = pa.RecordBatchReader.from_batches(stream.schema, _counted(stream, on_events))
    _run_over(con, stream, f"CREATE OR REPLACE TABLE {DECODED_MEMORY} AS SELECT * FROM _source")
    return DECODED_MEMORY


def _counted(
    batches: Iterable[pa.RecordBatch], on_events: Callable[[int], None]
) -> Iterator[pa.RecordBatch]:
    """``batches``, calling ``on_events`` with the rows passed so far after each."""
    rows = 0
    for batch in batches:
        yield batch
        rows += batch.num_rows
        on_events(rows)


def _run_over(con: duckdb.DuckDBPyConnection, source: Any, sql: str) -> None:
    """Run ``sql`` with the Arrow object ``source`` registered as ``_source`` meanwhile."""
    con.register("_source", source)
    try:
        con.execute(sql)
    finally:
        con.unregister("_source")


def _copied(
    con: duckdb.DuckDBPyConnection, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """``batches``, each appended to the decoded memory table as it passes (same thread)."""
    for batch in batches:
        _run_over(con, batch, f"INSERT INTO {DECODED_MEMORY} SELECT * FROM _source")
        yield batch


def connect_tables(
    tables: Mapping[str, pa.Table],
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection with every view over in-memory Arrow tables (missing ones are empty).

    Args:
        tables: log table name (``memory``, ``processes``, ...) -> table with that schema.
        memory_limit: DuckDB's memory limit (default: the ``analysis_memory_mb`` setting).
        threads: DuckDB worker threads (default: DuckDB's choice).
    """
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"unknown log tables {unknown}; known: {sorted(TABLES)}")
    con = _new_connection(memory_limit, threads)
    _define(con, dict(tables))
    return con


def open_reader(log: str | os.PathLike[str]) -> Any:
    """The broker's LogReader for a run directory or its ``events/`` directory."""
    try:
        from memscope.eventlog.log import open_log
    except ImportError as exc:  # pragma: no cover - only before the broker lands
        raise RuntimeError("memscope.eventlog.log is not available in this build") from exc
    return open_log(Path(log))


def connect(
    log: str | os.PathLike[str] | Any,
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    raw_memory: bool = True,
    matched: bool = False,
    state: bool = False,
    on_events: Callable[[int], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection with every view over a log.

    Every table but ``memory`` is a lazy pyarrow dataset (scanned, never loaded whole), and
    so are columnar memory rows. **Memory events the broker stored as chunks** (the default
    ``log_memory = "chunks"``) must be decoded, and DuckDB needs a source it can scan more
    than once: with ``raw_memory`` (the default) every one of them is decoded and copied into
    a DuckDB table up front -- the whole log, though it spills to a temporary directory
    beyond ``memory_limit`` (the directory is removed with the connection). That costs a
    pass over the log and its size in DuckDB; pass ``raw_memory=False`` when only the
    matched block state is needed (allocations, frees, variables, stats: see ``matched``).

    Args:
        log: a run directory, its ``events/`` directory, or an open LogReader.
        memory_limit: DuckDB's memory limit (default: the ``analysis_memory_mb`` setting);
            DuckDB spills sorts and joins to disk beyond it.
        threads: DuckDB worker threads (default: DuckDB's choice).
        raw_memory: False leaves ``raw_memory`` (and the ``events`` view) empty, for processes
            that only read block state.
        matched: also match blocks now (:func:`materialize`), in the same pass over the
            memory events that fills ``raw_memory``: each event is decoded once. (Calling
            :func:`materialize` later on a ``raw_memory`` connection reads the log again.)
        state: also register the log's analysis state and the views over it (``sites``,
            ``live``, ``peak_sites``, ``timeline``, ...; :func:`use_state`), brought up to
            date from its checkpoint (:func:`memscope.analyzers.state.open_state`).
        on_events: called with the memory events decoded or matched so far (progress).
    """
    reader: Any = log if hasattr(log, "dataset") else open_reader(log)
    con = _new_connection(memory_limit, threads)
    sources: dict[str, Any] = {
        name: reader.dataset(name) for name in TABLES if name not in ("memory", "memory_chunks")
    }
    sources["memory_chunks"] = reader.stored_dataset("memory_chunks")
    sources["memory"] = _memory_source(
        con, reader, raw_memory, fill=not matched, on_events=on_events
    )
    _define(con, sources)
    _READERS[con] = reader
    if matched:
        batches = memory_batches(reader)
        if isinstance(sources["memory"], str):  # the decoded table, still empty
            batches = _copied(con, batches)
        materialize(con, batches, on_chunk=on_events)
    if state:
        use_state(con, open_state(reader, on_events=on_events).tables())
    return con


def materialize(
    con: duckdb.DuckDBPyConnection,
    batches: Iterable[pa.RecordBatch] | None = None,
    schema: str | None = None,
    chunk_rows: int | None = None,
    on_chunk: Any = None,
) -> Any:
    """Match blocks once (chunk by chunk) and point the views at the stored result.

    Args:
        con: a connection made by :func:`connect` or :func:`connect_tables`.
        batches: the memory table's record batches in log order (default: streamed from
            the log a :func:`connect` connection was opened on; for :func:`connect_tables`,
            the registered table).
        schema: an attached, writable database to keep the state in (so worker processes
            can attach it read-only, :func:`use_materialized`); default: the connection's.
        chunk_rows: rows matched per chunk.
        on_chunk: called with the number of memory rows matched so far after each chunk.

    Returns:
        the :class:`memscope.analyzers.blocks.BlockMatcher`, to feed more rows later.
    """
    if batches is None:
        reader = _READERS.get(con)
        if reader is not None:
            batches = memory_batches(reader)
        else:
            batches = con.sql("SELECT * FROM raw_memory").arrow().read_all().to_batches()
    matcher = BlockMatcher(con, chunk_rows or CHUNK_ROWS, schema=schema)
    matcher.feed(batches, on_chunk)
    matcher.point_views()
    freeze(con)
    return matcher


#: Views stored as tables by :func:`freeze`, with the SQL that defines each.
_FROZEN = ("variables", "frames", "stacks", "_pids")


def freeze(con: duckdb.DuckDBPyConnection) -> None:
    """Store the views every analyzer reads repeatedly as tables (they are small).

    ``variables`` joins the whole block state; ``frames``/``stacks`` walk the stack tree with
    a recursive CTE; ``_pids`` scans every block. Computing each once keeps the analyzers'
    many small lookups cheap.
    """
    for sql in _view_sql():
        name = sql.split("VIEW ", 1)[1].split(" ", 1)[0]
        if name in _FROZEN:
            con.execute(sql)
            _store_view(con, name)


def _store_view(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Replace view ``name`` by a table of its rows (``_frozen_<name>``) and a view of that."""
    con.execute(f"DROP TABLE IF EXISTS _frozen_{name}")
    con.execute(f"CREATE TEMP TABLE _frozen_{name} AS SELECT * FROM {name}")
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _frozen_{name}")


def use_materialized(con: duckdb.DuckDBPyConnection, schema: str | None = None) -> None:
    """Point the views at block state :func:`materialize` kept in ``schema`` (attached)."""
    BlockMatcher.views_over(con, schema)
    freeze(con)
