"""Incremental block matching: allocator events in chunks, matched against a carried state.

The one-window form in :mod:`memscope.analyzers.views` sorts the whole log at once; this form
reads the memory table in chunks (record batches in log order, ``chunk_rows`` at a time) so
memory stays bounded on a 50-million-event log, and ``memscope analyze --follow`` feeds it
only the rows that are new since its last round -- nothing already read is read again.

State, kept in DuckDB tables on the connection:

``_blk_done``
    blocks whose end is known (one row per allocation, with the ending event's code, time and
    seq as ``nc``/``nts``/``nseq`` -- the columns the views' ``_allocations`` form reads);
``_blk_open``
    blocks still alive (``nc``/``nts``/``nseq`` NULL);
``_blk_ends``
    the notable block ends: unmatched (no allocation before it at its address), repeated
    (a double free) or freed through another domain, with ``pc``/``pc2``/``pts``/``pts2``;
``_blk_tail``
    the last two block events of every address seen (``rk`` 1 = last): the context a new
    chunk's events are matched against.

Each chunk: its block events plus the tail rows of the addresses it touches are sorted by
(pid, address, time, seq, ends before starts) with numpy and each row looks at its
neighbours (the same LEAD/LAG the views' one-window form computes in SQL; a test checks the
two agree for every chunk size); open blocks
that the chunk ends move to ``_blk_done``; the chunk's own starts go to done or open; its
notable ends are kept; the touched addresses' tails are replaced. Events of one address that
arrive in a later chunk than an event they precede in time are matched in arrival order
(the broker appends each producer's batches in order, so this needs a thread's event to be
shipped after a later event of another thread at the same address).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from memscope.analyzers.block_sql import START, use_chain
from memscope.analyzers.prefetch import prefetched
from memscope.protocol.log_schema import MEMORY
from memscope.protocol.wire import KIND_ALLOC, KIND_CALLOC, KIND_FREE, KIND_REALLOC

#: Rows of the memory table matched per chunk.
CHUNK_ROWS = 1_000_000
#: A chunk's rows this close to its process's latest row wait for the next chunk: a drain
#: reads one thread after another, so another thread's events up to about a drain's length
#: older can arrive in the next batch (matched in arrival order, they made phantom findings).
HOLD_BACK_NS = 1_000_000_000
#: Chunks between two checkpoints of the (compressed, in-memory) state database.
CHECKPOINT_EVERY = 4
#: Name of the attached in-memory database that holds the state by default.
STATE_DB = "blkstate"

_STATE = {
    "_blk_done": "pid UINTEGER, tid UBIGINT, seq UBIGINT, ts_ns BIGINT, address UBIGINT, "
    "size UBIGINT, stack_id UINTEGER, code UTINYINT, nc UTINYINT, nts BIGINT, "
    "nseq UBIGINT",
    "_blk_ends": "pid UINTEGER, tid UBIGINT, seq UBIGINT, ts_ns BIGINT, address UBIGINT, "
    "stack_id UINTEGER, code UTINYINT, pc UTINYINT, pc2 UTINYINT, pts BIGINT, "
    "pts2 BIGINT",
    "_blk_tail": "pid UINTEGER, address UBIGINT, ts_ns BIGINT, seq UBIGINT, code UTINYINT, "
    "rk UTINYINT",
}
_OPEN = "_blk_open"


class BlockMatcher:
    """Matches memory events chunk by chunk on ``con``; see the module docstring."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        chunk_rows: int = CHUNK_ROWS,
        schema: str | None = None,
    ) -> None:
        self.con = con
        self.chunk_rows = chunk_rows
        self.rows_matched = 0
        self._chunks_since_checkpoint = 0
        self._store_con: duckdb.DuckDBPyConnection | None = None
        if schema is None:
            # The state lives in a compressed in-memory database: a CHECKPOINT every few
            # chunks compresses what was appended (about 4x smaller than plain tables).
            schema = STATE_DB
            attached = con.execute(
                "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [schema]
            ).fetchall()[0][0]
            if not attached:
                con.execute(f"ATTACH ':memory:' AS {schema} (COMPRESS)")
        self.schema = schema
        p = self.prefix = f"{schema}." if schema else ""
        # The tail and the open blocks are rewritten every chunk (DELETE + INSERT): kept in
        # the connection's plain in-memory database, a checkpoint compresses only the
        # append-only tables (done blocks and notable ends) instead of rewriting those too.
        self.hot = "" if schema == STATE_DB else p
        for name, columns in _STATE.items():
            where = self.hot if name == "_blk_tail" else p
            con.execute(f"CREATE TABLE IF NOT EXISTS {where}{name} ({columns})")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self.hot}{_OPEN} AS SELECT * FROM {p}_blk_done LIMIT 0"
        )

    def feed(
        self,
        batches: Iterable[pa.RecordBatch],
        on_chunk: Callable[[int], None] | None = None,
    ) -> int:
        """Match the memory rows of ``batches`` (in log order); return how many were read.

        ``on_chunk`` is called with the running row count after each chunk (progress).

        Two stages overlap: this thread reads a chunk, sorts it with its context and updates
        the tail (:meth:`_window`), while a second thread stores the previous chunk's blocks
        (:meth:`_store`; DuckDB and numpy release the GIL). The next chunk's context only
        needs the tail, which is updated before the next chunk is read.
        """
        total = 0
        with cf.ThreadPoolExecutor(1, thread_name_prefix="memscope-match") as store:
            storing: cf.Future[None] | None = None
            for chunk in _chunks(batches, self.chunk_rows):
                tables = self._window(chunk)
                if storing is not None:
                    storing.result()
                self._chunks_since_checkpoint += 1
                due = self._chunks_since_checkpoint >= CHECKPOINT_EVERY
                if due:
                    self._chunks_since_checkpoint = 0
                storing = store.submit(self._store, tables, due)
                total += chunk.num_rows
                if on_chunk:
                    on_chunk(self.rows_matched + total)
            if storing is not None:
                storing.result()
        if self._chunks_since_checkpoint:
            self.checkpoint()
        self.rows_matched += total
        return total

    def table(self, name: str) -> str:
        """The qualified name of state table ``name`` (``_blk_done``, ``_blk_open``, ...)."""
        hot = name in (_OPEN, "_blk_tail")
        return f"{self.hot if hot else self.prefix}{name}"

    def checkpoint(self) -> None:
        """Compress the rows appended to the state since the last checkpoint."""
        self.con.execute(f"CHECKPOINT {self.schema}")
        self._chunks_since_checkpoint = 0

    def _window(self, chunk: pa.Table) -> dict[str, pa.Table] | None:
        """Match ``chunk`` against the tail; update the tail; the rows to store (or None)."""
        con, h = self.con, self.hot
        be = _block_events(chunk)
        if not len(be["pid"]):
            return None
        keys = pa.table({"pid": be["pid"], "address": be["address"]})
        con.register("_blk_keys", keys)
        try:
            ctx = (
                con.sql(f"""SELECT pid, address, ts_ns, seq, code FROM {h}_blk_tail
                WHERE (pid, address) IN (SELECT DISTINCT pid, address FROM _blk_keys)""")
                .arrow()
                .read_all()
            )
        finally:
            con.unregister("_blk_keys")
        w = _Window(
            be,
            {
                c: ctx.column(c).to_numpy(zero_copy_only=False)
                for c in ("pid", "address", "ts_ns", "seq", "code")
            },
        )
        outputs = {
            "resolved": w.ctx & w.start & w.has_next,
            "done": ~w.ctx & w.start & w.has_next,
            "open": ~w.ctx & w.start & ~w.has_next,
            "ends": ~w.ctx & ~w.start & w.notable,
        }
        tables = {name: w.select(mask, name) for name, mask in outputs.items()}
        tail = w.select(~w.has_next2, "tail")
        con.register("_blk_tail_new", tail)
        try:
            if len(ctx):
                con.register("_blk_ctx", ctx)
                con.execute(f"""DELETE FROM {h}_blk_tail WHERE (pid, address) IN
                    (SELECT DISTINCT pid, address FROM _blk_ctx)""")
                con.unregister("_blk_ctx")
            con.execute(f"INSERT INTO {h}_blk_tail BY NAME SELECT * FROM _blk_tail_new")
        finally:
            con.unregister("_blk_tail_new")
        return tables

    def _store(self, tables: dict[str, pa.Table] | None, checkpoint: bool) -> None:
        """Store one chunk's blocks and ends (on a cursor of its own: another thread)."""
        p, h = self.prefix, self.hot
        con = self._store_con
        if con is None:
            con = self._store_con = self.con.cursor()
        for name, table in (tables or {}).items():
            con.register(f"_blk_{name}_new", table)
        try:
            if tables:
                con.execute(f"""INSERT INTO {p}_blk_done
                    SELECT o.pid, o.tid, o.seq, o.ts_ns, o.address, o.size, o.stack_id,
                           o.code, r.nc, r.nts, r.nseq
                    FROM {h}{_OPEN} o JOIN _blk_resolved_new r
                      ON o.pid = r.pid AND o.address = r.address AND o.ts_ns = r.ts_ns
                     AND o.seq = r.seq""")
                if tables["resolved"].num_rows:
                    con.execute(f"""DELETE FROM {h}{_OPEN} WHERE (pid, address, ts_ns, seq)
                        IN (SELECT pid, address, ts_ns, seq FROM _blk_resolved_new)""")
                con.execute(f"INSERT INTO {p}_blk_done BY NAME SELECT * FROM _blk_done_new")
                con.execute(f"INSERT INTO {h}{_OPEN} BY NAME SELECT * FROM _blk_open_new")
                con.execute(f"INSERT INTO {p}_blk_ends BY NAME SELECT * FROM _blk_ends_new")
        finally:
            for name in tables or {}:
                con.unregister(f"_blk_{name}_new")
        if checkpoint:
            con.execute(f"CHECKPOINT {self.schema}")

    def point_views(self) -> None:
        """Point ``_allocations`` and ``_notable_ends`` at the matched state."""
        self.views_over(self.con, self.schema, self.hot)

    @staticmethod
    def views_over(
        con: duckdb.DuckDBPyConnection, schema: str | None = None, open_prefix: str | None = None
    ) -> None:
        """Point ``_allocations``/``_notable_ends`` at block state kept in ``schema``.

        ``open_prefix`` is where ``_blk_open`` is when not in ``schema`` (the matcher keeps it in
        ``hot``, out of its checkpoints).
        """
        p = f"{schema}." if schema else ""
        o = p if open_prefix is None else open_prefix
        con.execute(
            f"CREATE OR REPLACE VIEW _blk_chain AS SELECT * FROM {p}_blk_done "
            f"UNION ALL SELECT * FROM {o}{_OPEN}"
        )
        use_chain(con, "_blk_chain", f"{p}_blk_ends")


_COLUMNS = {
    "done": (
        "pid",
        "tid",
        "seq",
        "ts_ns",
        "address",
        "size",
        "stack_id",
        "code",
        "nc",
        "nts",
        "nseq",
    ),
    "resolved": ("pid", "address", "ts_ns", "seq", "nc", "nts", "nseq"),
    "ends": (
        "pid",
        "tid",
        "seq",
        "ts_ns",
        "address",
        "stack_id",
        "code",
        "pc",
        "pc2",
        "pts",
        "pts2",
    ),
    "tail": ("pid", "address", "ts_ns", "seq", "code", "rk"),
}
_COLUMNS["open"] = _COLUMNS["done"]
_TYPES = {
    "pid": pa.uint32(),
    "tid": pa.uint64(),
    "seq": pa.uint64(),
    "ts_ns": pa.int64(),
    "address": pa.uint64(),
    "size": pa.uint64(),
    "stack_id": pa.uint32(),
    "code": pa.uint8(),
    "nc": pa.uint8(),
    "nts": pa.int64(),
    "nseq": pa.uint64(),
    "pc": pa.uint8(),
    "pc2": pa.uint8(),
    "pts": pa.int64(),
    "pts2": pa.int64(),
    "rk": pa.uint8(),
}


def _block_events(chunk: pa.Table) -> dict[str, np.ndarray]:
    """The chunk's block starts and ends (see :func:`views._block_events_sql`), as arrays.

    Every alloc/calloc/realloc with an address starts a block and every free with one ends
    a block (one row each, in one pass); a realloc that had an old block also ends it (an
    extra row, appended only for those).
    """
    col = {name: chunk.column(name).to_numpy() for name in MEMORY.names}
    kind, address, old = col["kind"], col["address"], col["old_address"]
    nonzero = address != 0
    frees = (kind == KIND_FREE) & nonzero
    starts = (kind == KIND_ALLOC) | (kind == KIND_CALLOC) | (kind == KIND_REALLOC)
    starts &= nonzero
    keep = starts | frees
    moved = (kind == KIND_REALLOC) & (old != 0)
    code = (col["domain"].astype(np.uint8) << np.uint8(3)) | kind.astype(np.uint8)
    start_code = np.where(starts, code | np.uint8(START), code)
    names = ("pid", "tid", "seq", "ts_ns", "size", "stack_id")
    if keep.all() and not moved.any():
        out = {name: col[name] for name in names}
        out["address"], out["code"] = address, start_code
        return out
    if not moved.any():
        out = {name: col[name][keep] for name in names}
        out["address"] = address[keep]
        out["code"] = start_code[keep]
        return out
    out = {name: np.concatenate([col[name][keep], col[name][moved]]) for name in names}
    out["address"] = np.concatenate([address[keep], old[moved]])
    out["code"] = np.concatenate([start_code[keep], code[moved]])
    return out


class _Window:
    """Context + chunk rows sorted by (pid, address, ts_ns, seq, ends first), and around.

    Only what the structure needs is gathered in sorted order (pid, address, code and the
    neighbour flags); output columns are gathered later for the selected rows only
    (:meth:`select`), straight from the unsorted arrays through ``order``.
    """

    def __init__(self, be: dict[str, np.ndarray], ctx: dict[str, np.ndarray]) -> None:
        self.be, self.n_ctx = be, len(ctx["pid"])
        self.keys = {
            name: np.concatenate([ctx[name].astype(be[name].dtype), be[name]])
            for name in ("pid", "address", "ts_ns", "seq", "code")
        }
        k = self.keys
        start = k["code"] >= START
        self.order = order = block_order(k["pid"], k["address"], k["ts_ns"], k["seq"], start)
        self.n = n = len(order)
        pid, address, code = k["pid"][order], k["address"][order], k["code"][order]
        same = np.zeros(n + 1, bool)  # same[i]: rows i-1 and i share (pid, address)
        same[1:n] = (pid[1:] == pid[:-1]) & (address[1:] == address[:-1])
        self.has_next = same[1:]
        self.has_next2 = np.zeros(n, bool)
        self.has_next2[:-1] = self.has_next[:-1] & self.has_next[1:]
        self.has_prev = same[:-1]
        self.has_prev2 = np.zeros(n, bool)
        self.has_prev2[1:] = self.has_prev[1:] & self.has_prev[:-1]
        self.start = start[order]
        self.ctx = order < self.n_ctx
        pc = _shift(code, 1)
        prev_start = self.has_prev & (pc >= START)
        mismatch = ((pc >> 3) & 15) != ((code >> 3) & 15)
        self.notable = ~self.has_prev | ~prev_start | mismatch

    def _column(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Values of ``name`` at sorted positions ``rows``."""
        src = self.order[rows]
        if name in self.keys:
            return self.keys[name][src]
        # tid/size/stack_id: only chunk rows carry them (context rows are zeros).
        inner = src - self.n_ctx
        if (src >= self.n_ctx).all():
            return self.be[name][inner]
        return np.where(src >= self.n_ctx, self.be[name][np.maximum(inner, 0)], 0).astype(
            self.be[name].dtype
        )

    def select(self, mask: np.ndarray, name: str) -> pa.Table:
        """The rows of ``mask`` with the columns of output ``name`` (NULL where not valid)."""
        rows = np.flatnonzero(mask)
        last = max(self.n - 1, 0)
        columns = {}
        for column in _COLUMNS[name]:
            valid = _VALID.get(column)
            missing = None if valid is None else ~getattr(self, valid)[rows]
            if missing is not None and not missing.any():
                missing = None  # all valid: no validity bitmap to build
            if column == "rk":
                values = np.where(self.has_next[rows], 2, 1).astype(np.uint8)
            elif column in _NEIGHBOUR:
                source, k = _NEIGHBOUR[column]
                values = self._column(source, np.clip(rows + k, 0, last))
            else:
                values = self._column(column, rows)
            columns[column] = pa.array(values, type=_TYPES[column], mask=missing)
        return pa.table(columns)


def block_order(
    pid: np.ndarray, address: np.ndarray, ts_ns: np.ndarray, seq: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """The row order by (pid, address, ts_ns, seq, ends before starts), as indices.

    ``np.lexsort`` does one stable pass per key; when the values allow, the five keys are
    packed into three: (pid's rank in the chunk << 48 | address) and (seq << 1 | start).
    Addresses below 2**48 (every x86-64 and arm64 user-space address) and fewer than 65,536
    pids per chunk are the normal case; anything else takes the five-key sort.
    """
    if len(pid) and int(address.max()) < 1 << 48 and int(seq.max()) < 1 << 63:
        changes = np.flatnonzero(pid[1:] != pid[:-1]) + 1
        pids = np.unique(pid[np.concatenate(([0], changes))])
        if len(pids) < 1 << 16:
            rank = np.searchsorted(pids, pid).astype(np.uint64)
            where = (rank << np.uint64(48)) | address.astype(np.uint64)
            tie = (seq.astype(np.uint64) << np.uint64(1)) | start.astype(np.uint64)
            return np.lexsort((tie, ts_ns, where))
    return np.lexsort((start, seq, ts_ns, address, pid))


def _shift(values: np.ndarray, k: int) -> np.ndarray:
    """``values`` moved by ``k`` (positive: the k-th previous row; negative: next)."""
    out = np.zeros_like(values)
    if k > 0:
        out[k:] = values[:-k]
    else:
        out[:k] = values[-k:]
    return out


#: Neighbour columns: (source column, offset in sorted order).
_NEIGHBOUR = {
    "nc": ("code", 1),
    "nts": ("ts_ns", 1),
    "nseq": ("seq", 1),
    "pc": ("code", -1),
    "pts": ("ts_ns", -1),
    "pc2": ("code", -2),
    "pts2": ("ts_ns", -2),
}
_VALID = {
    "nc": "has_next",
    "nts": "has_next",
    "nseq": "has_next",
    "pc": "has_prev",
    "pts": "has_prev",
    "pc2": "has_prev2",
    "pts2": "has_prev2",
}


def _chunks(
    batches: Iterable[pa.RecordBatch], rows: int, hold_ns: int = HOLD_BACK_NS
) -> Iterator[pa.Table]:
    """Tables of about ``rows`` rows; each one's last ``hold_ns`` per pid go to the next."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            ready, held = _hold_back(pa.Table.from_batches(pending, schema=MEMORY), hold_ns)
            if ready.num_rows:
                yield ready
            pending = held.to_batches()
            count = held.num_rows
    if pending:
        yield pa.Table.from_batches(pending, schema=MEMORY)


def _hold_back(table: pa.Table, hold_ns: int) -> tuple[pa.Table, pa.Table]:
    """(rows older than their pid's latest row minus ``hold_ns``, the others)."""
    pids = table.column("pid").to_numpy()
    ts = table.column("ts_ns").to_numpy()
    keys, index = np.unique(pids, return_inverse=True)
    latest = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, index, ts)
    held = ts > latest[index] - hold_ns
    return table.filter(pa.array(~held)), table.filter(pa.array(held))


def memory_batches(reader: Any, prefetch: int = 8) -> Iterator[pa.RecordBatch]:
    """The memory events' record batches of a log reader, in log order.

    They come from the reader's ``memory_batches()`` (the columnar rows, then the chunks the
    broker stored, decoded); a thread keeps at most ``prefetch`` batches decoded ahead of the
    matcher (:func:`memscope.analyzers.prefetch.prefetched`).
    """
    yield from prefetched(reader.memory_batches(), prefetch)
