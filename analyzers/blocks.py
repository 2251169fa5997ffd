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

Each chunk: its block events plus the tail rows of the addresses it touches go through one
window (partition by pid and address, ordered by time, seq, ends before starts); open blocks
that the chunk ends move to ``_blk_done``; the chunk's own starts go to done or open; its
notable ends are kept; the touched addresses' tails are replaced. Events of one address that
arrive in a later chunk than an event they precede in time are matched in arrival order
(the broker appends each producer's batches in order, so this needs a thread's event to be
shipped after a later event of another thread at the same address).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from memscope.analyzers.views import _START, _block_events_sql
from memscope.broker.schema import MEMORY

#: Rows of the memory table matched per chunk.
CHUNK_ROWS = 1_000_000
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
        self, con: duckdb.DuckDBPyConnection, chunk_rows: int = CHUNK_ROWS,
        schema: str | None = None,
    ) -> None:
        self.con = con
        self.chunk_rows = chunk_rows
        self.rows_matched = 0
        self._chunks_since_checkpoint = 0
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
        for name, columns in _STATE.items():
            con.execute(f"CREATE TABLE IF NOT EXISTS {p}{name} ({columns})")
        con.execute(f"CREATE TABLE IF NOT EXISTS {p}{_OPEN} AS SELECT * FROM {p}_blk_done "
                    f"LIMIT 0")

    def feed(self, batches: Iterable[pa.RecordBatch]) -> int:
        """Match the memory rows of ``batches`` (in log order); return how many were read."""
        total = 0
        for chunk in _chunks(batches, self.chunk_rows):
            self._match(chunk)
            total += chunk.num_rows
            self._chunks_since_checkpoint += 1
            if self._chunks_since_checkpoint >= CHECKPOINT_EVERY:
                self.checkpoint()
        if self._chunks_since_checkpoint:
            self.checkpoint()
        self.rows_matched += total
        return total

    def checkpoint(self) -> None:
        """Compress the rows appended to the state since the last checkpoint."""
        self.con.execute(f"CHECKPOINT {self.schema}")
        self._chunks_since_checkpoint = 0

    def _match(self, chunk: pa.Table) -> None:
        con, p = self.con, self.prefix
        con.register("_blk_chunk", chunk)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _blk_be AS "
                        f"{_block_events_sql('_blk_chunk')}")
        finally:
            con.unregister("_blk_chunk")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _blk_ctx AS
            SELECT t.pid, t.address, t.ts_ns, t.seq, t.code FROM {p}_blk_tail t
            WHERE (t.pid, t.address) IN (SELECT DISTINCT pid, address FROM _blk_be)""")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _blk_w AS
            SELECT *, LEAD(code) OVER w AS nc, LEAD(ts_ns) OVER w AS nts,
                LEAD(seq) OVER w AS nseq, LAG(code) OVER w AS pc, LAG(code, 2) OVER w AS pc2,
                LAG(ts_ns) OVER w AS pts, LAG(ts_ns, 2) OVER w AS pts2,
                LEAD(code, 2) OVER w AS nc2
            FROM (SELECT pid, NULL::UBIGINT AS tid, seq, ts_ns, address, NULL::UBIGINT AS size,
                         NULL::UINTEGER AS stack_id, code, true AS ctx FROM _blk_ctx
                  UNION ALL
                  SELECT pid, tid, seq, ts_ns, address, size, stack_id, code, false
                  FROM _blk_be)
            WINDOW w AS (PARTITION BY pid, address ORDER BY ts_ns, seq, code >= {_START})""")
        # Open blocks this chunk ended: done.
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _blk_resolved AS
            SELECT pid, address, ts_ns, seq, nc, nts, nseq FROM _blk_w
            WHERE ctx AND code >= {_START} AND nc IS NOT NULL""")
        con.execute(f"""INSERT INTO {p}_blk_done
            SELECT o.pid, o.tid, o.seq, o.ts_ns, o.address, o.size, o.stack_id, o.code,
                   r.nc, r.nts, r.nseq
            FROM {p}{_OPEN} o JOIN _blk_resolved r
              ON o.pid = r.pid AND o.address = r.address AND o.ts_ns = r.ts_ns
             AND o.seq = r.seq""")
        con.execute(f"""DELETE FROM {p}{_OPEN} WHERE (pid, address, ts_ns, seq) IN
            (SELECT pid, address, ts_ns, seq FROM _blk_resolved)""")
        # The chunk's own blocks and notable ends.
        columns = "pid, tid, seq, ts_ns, address, size, stack_id, code, nc, nts, nseq"
        con.execute(f"""INSERT INTO {p}_blk_done SELECT {columns} FROM _blk_w
            WHERE NOT ctx AND code >= {_START} AND nc IS NOT NULL""")
        con.execute(f"""INSERT INTO {p}{_OPEN} SELECT {columns} FROM _blk_w
            WHERE NOT ctx AND code >= {_START} AND nc IS NULL""")
        con.execute(f"""INSERT INTO {p}_blk_ends
            SELECT pid, tid, seq, ts_ns, address, stack_id, code, pc, pc2, pts, pts2
            FROM _blk_w
            WHERE NOT ctx AND code < {_START}
              AND (pc IS NULL OR pc < {_START} OR ((pc >> 3) & 15) <> ((code >> 3) & 15))""")
        # New tails for the touched addresses.
        con.execute(f"""DELETE FROM {p}_blk_tail WHERE (pid, address) IN
            (SELECT DISTINCT pid, address FROM _blk_ctx)""")
        con.execute(f"""INSERT INTO {p}_blk_tail
            SELECT pid, address, ts_ns, seq, code, CASE WHEN nc IS NULL THEN 1 ELSE 2 END
            FROM _blk_w WHERE nc2 IS NULL""")
        for name in ("_blk_be", "_blk_ctx", "_blk_w", "_blk_resolved"):
            con.execute(f"DROP TABLE {name}")

    def point_views(self) -> None:
        """Point ``_allocations`` and ``_notable_ends`` at the matched state."""
        from memscope.analyzers.memstats import forget

        self.views_over(self.con, self.schema)
        forget(self.con)

    @staticmethod
    def views_over(con: duckdb.DuckDBPyConnection, schema: str | None = None) -> None:
        """Point ``_allocations``/``_notable_ends`` at block state kept in ``schema``."""
        from memscope.analyzers.views import use_chain

        p = f"{schema}." if schema else ""
        con.execute(f"CREATE OR REPLACE VIEW _blk_chain AS SELECT * FROM {p}_blk_done "
                    f"UNION ALL SELECT * FROM {p}{_OPEN}")
        use_chain(con, "_blk_chain", f"{p}_blk_ends")


def _chunks(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending, schema=MEMORY)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending, schema=MEMORY)


def memory_batches(dataset: Any) -> Iterator[pa.RecordBatch]:
    """The memory table's record batches in log order (segments, then batches).

    Read-ahead is kept small (pyarrow's default is 16 batches of each of 4 files), so the
    decoded events waiting for the matcher stay within a few chunks.
    """
    scanner = dataset.scanner(batch_size=1 << 18, batch_readahead=4, fragment_readahead=1,
                              use_threads=True)
    yield from scanner.to_reader()
