"""Exact memory totals of a log: what ``Tracker.get_stats()`` and ``memscope stats`` print.

Definitions (all from the ``allocations`` block matching of :mod:`memscope.analyzers.views`):

* ``total_allocations`` / ``total_allocated``: blocks started (alloc, calloc, and the new block
  of every realloc) and their bytes, plus the short-lived pairs an aggregated-mode producer
  folded at the source (``aggregates``), which are also counted as freed.
* ``total_deallocations`` / ``total_freed``: blocks ended by a free or a realloc, and the bytes
  they held.
* ``active_allocations`` / ``active_memory``: blocks still alive at the end of the log.
* ``peak_memory``: the maximum of the running sum of live bytes, events taken in
  (ts_ns, pid, seq) order with a block's end before a start at the same instant, and
  ``peak_ts_ns`` when it was first reached. Computed exactly without sorting the whole log:
  the time span is cut into buckets; each bucket's net change and its sum of increases bound
  the maximum inside it; only buckets whose upper bound beats the best level seen at any
  bucket edge are replayed in order.

Frees the log cannot match:

* A free of an address with no allocation before it in the log (a block allocated before
  tracing started, or by an untraced thread) is **ignored** by every total above: its size is
  unknown. It is counted in ``unmatched_frees``.
* An address handed out again with no free in between means the free was not recorded. The
  older block stops counting as alive at the reuse (it is not in ``total_deallocations``) and
  is counted in ``unrecorded_frees``.
"""

from __future__ import annotations

from typing import Any

import duckdb

from memscope.analyzers.views import materialize

#: Buckets used by the exact peak search (more buckets: fewer rows replayed in order).
PEAK_BUCKETS = 4096


def _where(pid: int | None, column: str = "pid") -> tuple[str, list[Any]]:
    if pid is None:
        return "TRUE", []
    return f"{column} = ?", [int(pid)]


def _deltas_sql(cond: str) -> str:
    """(t, pid, seq, is_start, delta) for every start and every counted end of a block."""
    return f"""
        SELECT ts_ns AS t, pid, seq, 1 AS is_start, size::BIGINT AS delta
        FROM _allocations WHERE {cond}
        UNION ALL
        SELECT end_ts_ns AS t, pid, end_seq AS seq, 0 AS is_start, -(size::BIGINT) AS delta
        FROM _allocations WHERE {cond} AND end_ts_ns IS NOT NULL"""


def peak(con: duckdb.DuckDBPyConnection, pid: int | None = None) -> tuple[int, int | None]:
    """``(peak_memory, peak_ts_ns)``: the exact maximum of live bytes and when it was reached.

    ``(0, None)`` for a log without allocations.
    """
    cond, params = _where(pid)
    span = con.execute(
        f"SELECT min(ts_ns), max(coalesce(end_ts_ns, ts_ns)) FROM _allocations WHERE {cond}",
        params,
    ).fetchall()[0]
    if span is None or span[0] is None:
        return 0, None
    lo, hi = int(span[0]), int(span[1])
    width = max(1, (hi - lo) // PEAK_BUCKETS + 1)
    buckets = con.execute(
        f"""WITH d AS ({_deltas_sql(cond)}),
        b AS (SELECT (t - ?) // ? AS bucket, sum(delta) AS net,
                     coalesce(sum(delta) FILTER (WHERE delta > 0), 0) AS pos
              FROM d GROUP BY bucket)
        SELECT bucket, sum(net) OVER (ORDER BY bucket ROWS UNBOUNDED PRECEDING) - net AS level0,
               net, pos
        FROM b ORDER BY bucket""",
        params + params + [lo, width],
    ).fetchall()
    best = 0
    for _, level0, net, _ in buckets:
        best = max(best, int(level0), int(level0) + int(net))
    candidates = [(int(b), int(l0)) for b, l0, _, pos in buckets if int(l0) + int(pos) > best]
    if not candidates:
        # The maximum is a bucket edge: find when it was first reached.
        return best, _first_time_at(con, cond, params, lo, width, buckets, best)
    starts = {b: l0 for b, l0 in candidates}
    rows = con.execute(
        f"""WITH d AS ({_deltas_sql(cond)}),
        c AS (SELECT unnest(?::BIGINT[]) AS bucket, unnest(?::BIGINT[]) AS level0),
        r AS (SELECT d.t, c.bucket, c.level0 + sum(d.delta) OVER (
                  PARTITION BY c.bucket ORDER BY d.t, d.pid, d.seq, d.is_start
                  ROWS UNBOUNDED PRECEDING) AS level
              FROM d JOIN c ON (d.t - ?) // ? = c.bucket)
        SELECT level, t FROM r ORDER BY level DESC, t ASC LIMIT 1""",
        params + params + [list(starts), list(starts.values()), lo, width],
    ).fetchall()[0]
    assert rows is not None
    if int(rows[0]) >= best:
        return int(rows[0]), int(rows[1])
    return best, _first_time_at(con, cond, params, lo, width, buckets, best)


def _first_time_at(
    con: duckdb.DuckDBPyConnection, cond: str, params: list[Any], lo: int, width: int,
    buckets: list[tuple[Any, ...]], best: int,
) -> int | None:
    if best <= 0:
        return None
    for bucket, level0, net, _ in buckets:
        if int(level0) + int(net) == best:
            row = con.execute(
                f"""WITH d AS ({_deltas_sql(cond)})
                SELECT max(t) FROM d WHERE (t - ?) // ? = ?""",
                params + params + [lo, width, int(bucket)],
            ).fetchall()[0]
            return int(row[0]) if row and row[0] is not None else None
    return None


def ensure_materialized(con: duckdb.DuckDBPyConnection) -> None:
    """Materialize the block matching on ``con`` unless it already is."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = '_allocations' "
        "AND contains(sql, '_blk_chain')"
    ).fetchall()[0]
    if not found or not found[0]:
        materialize(con)


def process_stats(con: duckdb.DuckDBPyConnection, pid: int | None = None) -> dict[str, Any]:
    """The exact totals of one process (``pid``) or of every process in the log together.

    Materializes the block matching on ``con`` first if it is not yet (so the several
    queries below share one pass over the log).

    Keys: ``active_memory``, ``peak_memory``, ``peak_ts_ns``, ``active_allocations``,
    ``total_allocations``, ``total_allocated``, ``total_deallocations``, ``total_freed`` (and
    its synonym ``total_deallocated``, the name ``MemoryStats`` uses),
    ``unmatched_frees``, ``unrecorded_frees``, ``folded_allocations``, ``folded_bytes``; and
    ``peak_memory_in_process`` when an aggregated-mode producer measured its own peak.
    """
    ensure_materialized(con)
    cond, params = _where(pid)
    row = con.execute(
        f"""SELECT count(*), coalesce(sum(size), 0),
            count(free_ts_ns), coalesce(sum(size) FILTER (WHERE free_ts_ns IS NOT NULL), 0),
            count(*) FILTER (WHERE end_ts_ns IS NULL),
            coalesce(sum(size) FILTER (WHERE end_ts_ns IS NULL), 0),
            count(reused_ts_ns)
        FROM _allocations WHERE {cond}""",
        params,
    ).fetchall()[0]
    assert row is not None
    n_alloc, allocated, n_free, freed, n_active, active, reused = (int(v) for v in row)
    unmatched = con.execute(
        f"SELECT count(*) FROM _notable_ends WHERE NOT matched AND {cond}", params
    ).fetchall()[0]
    folded = con.execute(
        f"""SELECT coalesce(sum(alloc_count), 0), coalesce(sum(alloc_bytes), 0)
        FROM raw_aggregates WHERE {cond}""",
        params,
    ).fetchall()[0]
    assert unmatched is not None and folded is not None
    folded_n, folded_b = int(folded[0]), int(folded[1])
    peak_bytes, peak_ts = peak(con, pid)
    stats: dict[str, Any] = {
        "active_memory": active,
        "peak_memory": peak_bytes,
        "peak_ts_ns": peak_ts,
        "active_allocations": n_active,
        "total_allocations": n_alloc + folded_n,
        "total_allocated": allocated + folded_b,
        "total_deallocations": n_free + folded_n,
        "total_freed": freed + folded_b,
        "total_deallocated": freed + folded_b,
        "unmatched_frees": int(unmatched[0]),
        "unrecorded_frees": reused,
        "folded_allocations": folded_n,
        "folded_bytes": folded_b,
    }
    in_process = con.execute(
        f"SELECT max(peak_bytes) FROM producer_stats_latest WHERE {cond}", params
    ).fetchall()[0]
    if in_process and in_process[0] is not None:
        stats["peak_memory_in_process"] = int(in_process[0])
    return stats
