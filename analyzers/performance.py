"""The performance analyzer: ``<base>_performance.json``.

* ``rates_over_time``: per time bucket, blocks started and ended, bytes allocated and freed,
  and the rates per second (frees are the block ends the log matched to an allocation).
* ``allocation_distribution``: the size histogram -- tiny <= 64 B, small <= 256 B,
  medium <= 1 KiB, large <= 4 KiB, huge <= 16 KiB, massive above.
* ``hottest_sites``: the top allocation stacks by count and by bytes.
* ``temporary_allocations``: blocks freed within ``temporary_ns`` of their allocation.
* ``per_thread`` / ``per_process``: allocation counts and bytes.
* ``peak_attribution``: at the exact peak (see :mod:`memscope.analyzers.memstats`), the stacks
  whose blocks were alive, with their bytes and share of the peak.
* ``tracer_cost``: the producers' own counters (events, bytes shipped, drops, buffer
  high-water, batches, spooled) and the broker's ingest counters (batches, events, gaps,
  duplicates, rejected), as measured.
* ``folded_allocations``: short-lived pairs an aggregated-mode producer folded at the source.
"""

from __future__ import annotations

from typing import Any

import duckdb

from memscope.analyzers._common import (
    STACK_JOIN,
    AnalyzerOptions,
    drop_none,
    metadata,
    one,
    pct,
    rows,
    time_span,
    write_report,
)
from memscope.analyzers.memstats import peak, process_stats

KIND = "performance"
FILE_KIND = "performance"

#: (name, inclusive upper bound in bytes); the last bucket has no bound.
SIZE_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("tiny", 64), ("small", 256), ("medium", 1024), ("large", 4096), ("huge", 16384),
    ("massive", None),
)


def _bucket_case() -> str:
    arms = " ".join(f"WHEN size <= {int(bound)} THEN {i}"
                    for i, (_, bound) in enumerate(SIZE_BUCKETS) if bound is not None)
    return f"CASE {arms} ELSE {len(SIZE_BUCKETS) - 1} END"


def size_histogram(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Counts and bytes of blocks per size bucket (every bucket listed, empty ones too)."""
    found = {r["b"]: r for r in rows(
        con,
        f"""SELECT {_bucket_case()} AS b, count(*) AS count, sum(size) AS bytes
        FROM _allocations GROUP BY b ORDER BY b""",
    )}
    total = sum(r["count"] for r in found.values())
    out = []
    lower = 0
    for i, (name, bound) in enumerate(SIZE_BUCKETS):
        r = found.get(i, {"count": 0, "bytes": 0})
        out.append(drop_none({"bucket": name, "min_bytes": lower, "max_bytes": bound,
                              "count": r["count"], "bytes": r["bytes"] or 0,
                              "percentage": pct(r["count"], total)}))
        lower = (bound or 0) + 1
    return out


def rates_over_time(con: duckdb.DuckDBPyConnection, buckets: int) -> dict[str, Any]:
    """Allocation and free counts, bytes and rates per time bucket (buckets with events)."""
    span = time_span(con)
    if span is None:
        return {"bucket_ns": None, "points": []}
    lo, hi = span
    width = max(1, (hi - lo) // max(1, buckets) + 1)
    points = rows(
        con,
        """WITH d AS (
            SELECT (ts_ns - ?) // ? AS b, 1 AS n_alloc, 0 AS n_free, size AS b_alloc,
                   0 AS b_free
            FROM _allocations
            UNION ALL
            SELECT (free_ts_ns - ?) // ?, 0, 1, 0, size FROM _allocations
            WHERE free_ts_ns IS NOT NULL)
        SELECT ? + b * ? AS ts_ns, sum(n_alloc) AS allocations, sum(n_free) AS frees,
               sum(b_alloc) AS bytes_allocated, sum(b_free) AS bytes_freed
        FROM d GROUP BY b ORDER BY b""",
        [lo, width, lo, width, lo, width],
    )
    seconds = width / 1e9
    for p in points:
        p["allocations_per_s"] = round(p["allocations"] / seconds, 3)
        p["frees_per_s"] = round(p["frees"] / seconds, 3)
        p["bytes_allocated_per_s"] = round(p["bytes_allocated"] / seconds, 3)
    return {"bucket_ns": width, "start_ts_ns": lo, "end_ts_ns": hi, "points": points}


def hottest_sites(con: duckdb.DuckDBPyConnection, top_n: int) -> dict[str, Any]:
    """The top stacks by allocation count and by bytes allocated."""
    def top(order: str) -> list[dict[str, Any]]:
        return [drop_none(r) for r in rows(
            con,
            f"""WITH x AS (SELECT pid, stack_id, count(*) AS allocations,
                                  sum(size) AS bytes_allocated
                           FROM _allocations GROUP BY pid, stack_id
                           ORDER BY {order}, pid, stack_id LIMIT ?)
            SELECT x.*, s.location, coalesce(s.trace, []) AS trace FROM x {STACK_JOIN}
            ORDER BY {order.replace("allocations", "x.allocations")
                      .replace("bytes_", "x.bytes_")}, x.pid, x.stack_id""",
            [top_n],
        )]
    return {"by_count": top("allocations DESC, bytes_allocated DESC"),
            "by_bytes": top("bytes_allocated DESC, allocations DESC")}


def temporary_allocations(
    con: duckdb.DuckDBPyConnection, threshold_ns: int, top_n: int
) -> dict[str, Any]:
    """Blocks freed within ``threshold_ns``: totals and the sites making most of them."""
    totals = one(
        con,
        """SELECT count(*) AS count, coalesce(sum(size), 0) AS bytes,
                  (SELECT count(*) FROM _allocations) AS all_blocks
        FROM _allocations WHERE free_ts_ns IS NOT NULL AND free_ts_ns - ts_ns <= ?""",
        [threshold_ns],
    )
    sites = [drop_none(r) for r in rows(
        con,
        f"""WITH top AS (SELECT pid, stack_id, count(*) AS count, sum(size) AS bytes
                         FROM _allocations
                         WHERE free_ts_ns IS NOT NULL AND free_ts_ns - ts_ns <= ?
                         GROUP BY pid, stack_id
                         ORDER BY count DESC, bytes DESC, pid, stack_id LIMIT ?),
        m AS (SELECT pid, stack_id, median(free_ts_ns - ts_ns) AS median_lifetime_ns
              FROM _allocations
              WHERE free_ts_ns IS NOT NULL AND free_ts_ns - ts_ns <= ?
                AND (pid, stack_id) IN (SELECT pid, stack_id FROM top)
              GROUP BY pid, stack_id),
        x AS (SELECT top.*, m.median_lifetime_ns FROM top
              JOIN m ON m.pid = top.pid AND m.stack_id = top.stack_id)
        SELECT x.*, s.location FROM x {STACK_JOIN}
        ORDER BY x.count DESC, x.bytes DESC, x.pid, x.stack_id""",
        [threshold_ns, top_n, threshold_ns],
    )]
    return drop_none({"threshold_ns": threshold_ns, "count": totals["count"],
                      "bytes": totals["bytes"],
                      "percentage_of_allocations": pct(totals["count"], totals["all_blocks"]),
                      "top_sites": sites})


def per_thread(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Allocations, bytes and blocks alive at the end per (pid, tid)."""
    return [drop_none(r) for r in rows(
        con,
        """WITH x AS (SELECT pid, tid, count(*) AS allocations, sum(size) AS bytes_allocated,
                             count(free_ts_ns) AS freed,
                             count(*) FILTER (WHERE end_ts_ns IS NULL) AS live_allocations,
                             coalesce(sum(size) FILTER (WHERE end_ts_ns IS NULL), 0)
                                 AS live_bytes
                      FROM _allocations GROUP BY pid, tid)
        SELECT x.*, t.name AS thread_name FROM x
        LEFT JOIN threads t ON t.pid = x.pid AND t.tid = x.tid
        ORDER BY x.pid, x.tid""",
    )]


def per_process(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Allocations, bytes, threads and duration per process.

    For a sampled process the counts are of samples (``figures_are``) and ``estimated``
    holds the totals they stand for (:func:`memscope.analyzers.memstats.process_stats`).
    """
    out = [drop_none(r) for r in _per_process_rows(con)]
    for entry in out:
        if entry.get("mode") == "sampled":
            stats = process_stats(con, entry["pid"])
            if stats.get("estimated"):
                entry["figures_are"] = "samples"
                entry["estimated"] = {"allocations": stats["total_allocations"],
                                      "bytes_allocated": stats["total_allocated"],
                                      "freed": stats["total_deallocations"]}
    return out


def _per_process_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return list(rows(
        con,
        """WITH x AS (SELECT pid, count(*) AS allocations, sum(size) AS bytes_allocated,
                             count(free_ts_ns) AS freed, count(DISTINCT tid) AS threads,
                             min(ts_ns) AS first_ts_ns, max(ts_ns) AS last_ts_ns
                      FROM _allocations GROUP BY pid)
        SELECT x.*, p.ppid, p.argv, p.mode, p.end_ts_ns - p.start_ts_ns AS duration_ns
        FROM x LEFT JOIN processes p ON p.pid = x.pid ORDER BY x.pid""",
    ))


def peak_attribution(con: duckdb.DuckDBPyConnection, top_n: int) -> dict[str, Any]:
    """The stacks holding memory at the peak."""
    peak_bytes, peak_ts = peak(con)
    if peak_ts is None:
        return {"peak_memory": peak_bytes}
    holders = [drop_none(r) for r in rows(
        con,
        f"""WITH x AS (SELECT pid, stack_id, count(*) AS blocks, sum(size) AS bytes
                       FROM _allocations
                       WHERE ts_ns <= ? AND (end_ts_ns IS NULL OR end_ts_ns > ?)
                       GROUP BY pid, stack_id ORDER BY bytes DESC, blocks DESC, pid, stack_id
                       LIMIT ?)
        SELECT x.*, s.location, coalesce(s.trace, []) AS trace FROM x {STACK_JOIN}
        ORDER BY x.bytes DESC, x.blocks DESC, x.pid, x.stack_id""",
        [peak_ts, peak_ts, top_n],
    )]
    for h in holders:
        h["percentage_of_peak"] = pct(h["bytes"], peak_bytes)
    return {"peak_memory": peak_bytes, "peak_ts_ns": peak_ts, "holders": holders}


def tracer_cost(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The producers' and the broker's own counters, as measured (latest values)."""
    producers = [drop_none(r) for r in rows(
        con,
        """SELECT s.pid, s.ts_ns, s.events, s.bytes, s.drops, s.buffer_high_water, s.batches,
                  s.spooled, s.current_bytes, s.peak_bytes,
                  CASE WHEN s.events > 0 THEN s.bytes / s.events END AS bytes_per_event
        FROM producer_stats_latest s ORDER BY s.pid""",
    )]
    ingest = rows(
        con,
        "SELECT producer, pid, batches, events, gaps, duplicates, rejected FROM ingest "
        "ORDER BY producer",
    )
    totals = one(
        con,
        """SELECT sum(events) AS events, sum(bytes) AS bytes, sum(drops) AS drops,
                  max(buffer_high_water) AS buffer_high_water
        FROM producer_stats_latest""",
    )
    return {"totals": drop_none(totals), "producers": producers, "ingest": ingest}


def folded(con: duckdb.DuckDBPyConnection, top_n: int) -> dict[str, Any]:
    """Totals and top sites of the short-lived pairs folded at the source."""
    totals = one(con, """SELECT coalesce(sum(alloc_count), 0) AS allocations,
                                coalesce(sum(alloc_bytes), 0) AS bytes FROM raw_aggregates""")
    sites = [drop_none(r) for r in rows(
        con,
        f"""WITH x AS (SELECT pid, stack_id, sum(alloc_count) AS allocations,
                              sum(alloc_bytes) AS bytes
                       FROM raw_aggregates GROUP BY pid, stack_id
                       ORDER BY allocations DESC, bytes DESC, pid, stack_id LIMIT ?)
        SELECT x.*, s.location FROM x {STACK_JOIN}
        ORDER BY x.allocations DESC, x.bytes DESC, x.pid, x.stack_id""",
        [top_n],
    )]
    return {**totals, "top_sites": sites}


def run(con: duckdb.DuckDBPyConnection, options: AnalyzerOptions) -> dict[str, Any]:
    """Build the performance report and write it; returns the report."""
    report: dict[str, Any] = {
        "metadata": metadata(con, FILE_KIND, options,
                             "Allocation rates, size distribution, hot sites, peak holders and "
                             "the tracer's own cost"),
        "rates_over_time": rates_over_time(con, options.time_buckets),
        "allocation_distribution": size_histogram(con),
        "hottest_sites": hottest_sites(con, options.top_n),
        "temporary_allocations": temporary_allocations(con, options.temporary_ns, options.top_n),
        "per_thread": per_thread(con),
        "per_process": per_process(con),
        "peak_attribution": peak_attribution(con, options.top_n),
        "tracer_cost": tracer_cost(con),
        "folded_allocations": folded(con, options.top_n),
    }
    write_report(report, options, FILE_KIND)
    return report
