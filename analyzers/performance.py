"""The performance analyzer: ``<base>_performance.json``.

* ``rates_over_time``: per time bucket, blocks started and ended, bytes allocated and freed,
  and the rates per second (frees are the block ends the log matched to an allocation).
* ``allocation_distribution``: the size histogram -- tiny <= 64 B, small <= 256 B,
  medium <= 1 KiB, large <= 4 KiB, huge <= 16 KiB, massive above.
* ``hottest_sites``: the top allocation stacks by count and by bytes.
* ``temporary_allocations``: blocks freed within ``temporary_ns`` of their allocation, and
  the lifetime histogram of every freed block (powers of two).
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

from memscope.analyzers.common import (
    AnalyzerOptions,
    drop_none,
    metadata,
    one,
    pct,
    rebucket,
    rows,
    time_span,
    write_report,
)
from memscope.analyzers.memstats import peak, process_stats
from memscope.analyzers.stacks import add_locations

KIND = "performance"
FILE_KIND = "performance"

#: (name, inclusive upper bound in bytes); the last bucket has no bound.
SIZE_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("tiny", 64),
    ("small", 256),
    ("medium", 1024),
    ("large", 4096),
    ("huge", 16384),
    ("massive", None),
)


def _bucket_case() -> str:
    arms = " ".join(
        f"WHEN size <= {int(bound)} THEN {i}"
        for i, (_, bound) in enumerate(SIZE_BUCKETS)
        if bound is not None
    )
    return f"CASE {arms} ELSE {len(SIZE_BUCKETS) - 1} END"


def size_histogram(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Counts and bytes of blocks per size bucket (every bucket listed, empty ones too)."""
    found = {
        r["b"]: r
        for r in rows(
            con,
            f"""SELECT {_bucket_case()} AS b, sum(count) AS count, sum(size * count) AS bytes
        FROM state_sizes GROUP BY b ORDER BY b""",
        )
    }
    total = sum(r["count"] for r in found.values())
    out = []
    lower = 0
    for i, (name, bound) in enumerate(SIZE_BUCKETS):
        r = found.get(i, {"count": 0, "bytes": 0})
        out.append(
            drop_none(
                {
                    "bucket": name,
                    "min_bytes": lower,
                    "max_bytes": bound,
                    "count": r["count"],
                    "bytes": r["bytes"] or 0,
                    "percentage": pct(r["count"], total),
                }
            )
        )
        lower = (bound or 0) + 1
    return out


def rates_over_time(con: duckdb.DuckDBPyConnection, buckets: int) -> dict[str, Any]:
    """Allocation and free counts, bytes and rates per time bucket (buckets with events).

    From the state's all-process fine timeline: a coarse bucket takes the fine buckets that
    start in it (exact to one fine bucket, ``resolution_ns``).
    """
    span = time_span(con)
    if span is None:
        return {"bucket_ns": None, "points": []}
    lo, hi = span
    base = con.execute("SELECT origin_ts_ns, width_ns FROM state_all").fetchall()[0]
    origin, fine_width = int(base[0]), int(base[1])
    fine = rows(con, "SELECT * FROM state_timeline_all ORDER BY bucket")
    width, coarse = rebucket(fine, lo, hi, buckets, lambda r: origin + r["bucket"] * fine_width)
    seconds = width / 1e9
    points = []
    for index in sorted(coarse):
        group = coarse[index]
        p = {
            "ts_ns": lo + index * width,
            "allocations": sum(g["allocations"] for g in group),
            "frees": sum(g["frees"] for g in group),
            "bytes_allocated": sum(g["bytes_allocated"] for g in group),
            "bytes_freed": sum(g["bytes_freed"] for g in group),
        }
        p["allocations_per_s"] = round(p["allocations"] / seconds, 3)
        p["frees_per_s"] = round(p["frees"] / seconds, 3)
        p["bytes_allocated_per_s"] = round(p["bytes_allocated"] / seconds, 3)
        points.append(p)
    return {
        "bucket_ns": width,
        "resolution_ns": fine_width,
        "start_ts_ns": lo,
        "end_ts_ns": hi,
        "points": points,
    }


def _site_totals(
    con: duckdb.DuckDBPyConnection, order: str, top_n: int, where: str = "TRUE"
) -> list[dict[str, Any]]:
    """Sites (pid, stack) summed over domains, the first ``top_n`` by ``order``."""
    return rows(
        con,
        f"""SELECT pid, stack_id, sum(allocations) AS allocations,
                   sum(bytes_allocated) AS bytes_allocated, sum(frees) AS frees,
                   sum(live_blocks) AS live_blocks, sum(live_bytes) AS live_bytes,
                   sum(temporary_count) AS temporary_count,
                   sum(temporary_bytes) AS temporary_bytes,
                   sum(peak_blocks) AS peak_blocks, sum(peak_bytes) AS peak_bytes,
                   sum(all_peak_blocks) AS all_peak_blocks,
                   sum(all_peak_bytes) AS all_peak_bytes
        FROM state_sites WHERE {where} GROUP BY pid, stack_id
        ORDER BY {order}, pid, stack_id LIMIT ?""",
        [top_n],
    )


def hottest_sites(con: duckdb.DuckDBPyConnection, top_n: int) -> dict[str, Any]:
    """The top stacks by allocation count and by bytes allocated."""

    def top(order: str) -> list[dict[str, Any]]:
        found = [
            {k: r[k] for k in ("pid", "stack_id", "allocations", "bytes_allocated")}
            for r in _site_totals(con, order, top_n)
        ]
        add_locations(con, found, trace=True)
        return [drop_none(r) for r in found]

    return {
        "by_count": top("allocations DESC, bytes_allocated DESC"),
        "by_bytes": top("bytes_allocated DESC, allocations DESC"),
    }


def temporary_allocations(
    con: duckdb.DuckDBPyConnection, threshold_ns: int, top_n: int
) -> dict[str, Any]:
    """Blocks freed within ``threshold_ns``: totals, the sites making most, lifetimes."""
    totals = one(
        con,
        """SELECT coalesce(sum(temporary_count), 0) AS count,
                  coalesce(sum(temporary_bytes), 0) AS bytes,
                  coalesce(sum(allocations), 0) AS all_blocks
        FROM state_processes""",
    )
    sites = [
        {
            "pid": r["pid"],
            "stack_id": r["stack_id"],
            "count": r["temporary_count"],
            "bytes": r["temporary_bytes"],
        }
        for r in _site_totals(
            con, "temporary_count DESC, temporary_bytes DESC", top_n, "temporary_count > 0"
        )
    ]
    add_locations(con, sites)
    histogram = rows(
        con,
        """SELECT min_ns, max_ns, sum(count) AS count, sum(bytes) AS bytes
        FROM lifetimes_hist GROUP BY min_ns, max_ns ORDER BY min_ns""",
    )
    return drop_none(
        {
            "threshold_ns": threshold_ns,
            "count": totals["count"],
            "bytes": totals["bytes"],
            "percentage_of_allocations": pct(totals["count"], totals["all_blocks"]),
            "top_sites": [drop_none(s) for s in sites],
            "lifetime_histogram": histogram,
        }
    )


def per_thread(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Allocations, bytes and blocks alive at the end per (pid, tid)."""
    return [
        drop_none(r)
        for r in rows(
            con,
            """SELECT x.pid, x.tid, x.allocations, x.bytes_allocated, x.frees AS freed,
                  x.live_blocks AS live_allocations, x.live_bytes, t.name AS thread_name
        FROM state_threads x LEFT JOIN threads t ON t.pid = x.pid AND t.tid = x.tid
        ORDER BY x.pid, x.tid""",
        )
    ]


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
                entry["estimated"] = {
                    "allocations": stats["total_allocations"],
                    "bytes_allocated": stats["total_allocated"],
                    "freed": stats["total_deallocations"],
                }
    return out


def _per_process_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return list(
        rows(
            con,
            """WITH t AS (SELECT pid, count(*) AS threads FROM state_threads
                      WHERE allocations > 0 GROUP BY pid)
        SELECT x.pid, x.allocations, x.bytes_allocated, x.frees AS freed,
               coalesce(t.threads, 0) AS threads,
               CASE WHEN x.first_alloc_ts_ns >= 0 THEN x.first_alloc_ts_ns END AS first_ts_ns,
               CASE WHEN x.last_alloc_ts_ns >= 0 THEN x.last_alloc_ts_ns END AS last_ts_ns,
               p.ppid, p.argv, p.mode, p.end_ts_ns - p.start_ts_ns AS duration_ns
        FROM state_processes x LEFT JOIN t ON t.pid = x.pid
        LEFT JOIN processes p ON p.pid = x.pid WHERE x.allocations > 0 ORDER BY x.pid""",
        )
    )


def peak_attribution(con: duckdb.DuckDBPyConnection, top_n: int) -> dict[str, Any]:
    """The stacks holding memory at the peak (all processes together)."""
    peak_bytes, peak_ts = peak(con)
    if peak_ts is None:
        return {"peak_memory": peak_bytes}
    found = _site_totals(
        con, "all_peak_bytes DESC, all_peak_blocks DESC", top_n, "all_peak_blocks > 0"
    )
    holders = [
        {
            "pid": r["pid"],
            "stack_id": r["stack_id"],
            "blocks": r["all_peak_blocks"],
            "bytes": r["all_peak_bytes"],
        }
        for r in found
    ]
    add_locations(con, holders, trace=True)
    for h in holders:
        h["percentage_of_peak"] = pct(h["bytes"], peak_bytes)
    return {
        "peak_memory": peak_bytes,
        "peak_ts_ns": peak_ts,
        "holders": [drop_none(h) for h in holders],
    }


def tracer_cost(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The producers' and the broker's own counters, as measured (latest values)."""
    producers = [
        drop_none(r)
        for r in rows(
            con,
            """SELECT s.pid, s.ts_ns, s.events, s.bytes, s.drops, s.buffer_high_water, s.batches,
                  s.spooled, s.current_bytes, s.peak_bytes,
                  CASE WHEN s.events > 0 THEN s.bytes / s.events END AS bytes_per_event
        FROM producer_stats_latest s ORDER BY s.pid""",
        )
    ]
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
    totals = one(
        con,
        """SELECT coalesce(sum(alloc_count), 0) AS allocations,
                                coalesce(sum(alloc_bytes), 0) AS bytes FROM raw_aggregates""",
    )
    sites = rows(
        con,
        """SELECT pid, stack_id, sum(alloc_count) AS allocations, sum(alloc_bytes) AS bytes
        FROM raw_aggregates GROUP BY pid, stack_id
        ORDER BY allocations DESC, bytes DESC, pid, stack_id LIMIT ?""",
        [top_n],
    )
    add_locations(con, sites)
    return {**totals, "top_sites": [drop_none(s) for s in sites]}


def run(con: duckdb.DuckDBPyConnection, options: AnalyzerOptions) -> dict[str, Any]:
    """Build the performance report and write it; returns the report."""
    report: dict[str, Any] = {
        "metadata": metadata(
            con,
            FILE_KIND,
            options,
            "Allocation rates, size distribution, hot sites, peak holders and "
            "the tracer's own cost",
        ),
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
