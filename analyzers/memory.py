"""The memory analyzer: ``<base>_memory_analysis.json``.

Holds the eight seed metrics (active, peak, active allocations, efficiency, median and p95
allocation size, fragmentation, allocation density) for the whole log and per process, live
memory over time per process, the type hierarchy (category -> subcategory -> type) of the
tracked variables, the tracked variables themselves, the top allocation sites and the
largest blocks alive at the end, and the flame graph data (:mod:`memscope.analyzers.flame`).

* ``memory_efficiency`` = active / peak * 100; ``fragmentation`` = (peak - active) / peak * 100
  (absent when peak is 0). Both use :func:`memscope.analyzers.memstats.process_stats`'s
  peak: for an aggregated-mode process the producer's measured peak when the log's is lower
  (``peak_memory_source`` says which), for a sampled one the estimate (``estimated``).
* ``median_allocation_size`` (interpolated) and ``p95_allocation_size`` (the smallest size
  with at least 95 % of blocks at or below it) over every block started in the log.
* ``allocation_density`` = total_allocations / tracked variables; absent with no variables.
* Type sizes are the tracked objects' own (shallow) sizes; ``deep_size_bytes`` is shown beside
  them (deep sizes of nested tracked objects overlap, so they are not summed into totals).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import duckdb

from memscope.analyzers import type_names
from memscope.analyzers.common import (
    AnalyzerOptions,
    drop_none,
    metadata,
    pct,
    process_ids,
    rebucket,
    rows,
    write_report,
)
from memscope.analyzers.flame import FlameOptions, build_flame
from memscope.analyzers.memstats import process_stats
from memscope.analyzers.stacks import add_locations

KIND = "memory"
#: Sites and call-tree nodes in the report's flame graph (the rest grouped per process):
#: it is embedded in the dashboard, so it stays small.
REPORT_FLAME_SITES = 2000
REPORT_FLAME_NODES = 20_000
FILE_KIND = "memory_analysis"


def _eight_metrics(con: duckdb.DuckDBPyConnection, pid: int | None, tracked: int) -> dict[str, Any]:
    stats = process_stats(con, pid)
    cond, params = ("pid = ?", [pid]) if pid is not None else ("TRUE", [])
    sizes = size_percentiles(con, cond, params)
    peak, active = stats["peak_memory"], stats["active_memory"]
    metrics = {
        **stats,
        "memory_efficiency": pct(active, peak),
        "median_allocation_size": sizes["median"],
        "p95_allocation_size": sizes["p95"],
        "fragmentation": pct(peak - active, peak),
        "tracked_variables": tracked,
        "allocation_density": round(stats["total_allocations"] / tracked, 3) if tracked else None,
    }
    return drop_none(metrics)


def size_percentiles(
    con: duckdb.DuckDBPyConnection, cond: str, params: list[Any]
) -> dict[str, Any]:
    """Exact median (interpolated, like the seed) and p95 of block sizes.

    Counted per distinct size (a hash aggregate) rather than sorting every block: heaps
    have few distinct sizes. p95 is the size at index ``int(0.95 * n)`` of the sorted sizes.
    """
    counts = con.execute(
        f"SELECT size, sum(count) FROM state_sizes WHERE {cond} GROUP BY size ORDER BY size",
        params,
    ).fetchall()
    n = sum(int(c) for _, c in counts)
    if not n:
        return {"median": None, "p95": None}

    def at(index: int) -> int:
        seen = 0
        for size, count in counts:
            seen += int(count)
            if index < seen:
                return int(size)
        return int(counts[-1][0])  # pragma: no cover

    median = float(at(n // 2)) if n % 2 else (at(n // 2 - 1) + at(n // 2)) / 2
    return {"median": median, "p95": at(min(n - 1, int(0.95 * n)))}


def _processes(con: duckdb.DuckDBPyConnection, pids: list[int]) -> list[dict[str, Any]]:
    info = {r["pid"]: r for r in rows(con, "SELECT * FROM processes ORDER BY pid")}
    tracked = dict(con.execute("SELECT pid, count(*) FROM raw_variables GROUP BY pid").fetchall())
    out = []
    for pid in pids:
        row = info.get(pid, {"pid": pid})
        entry = drop_none(
            {
                "pid": pid,
                "ppid": row.get("ppid"),
                "host": row.get("host"),
                "argv": row.get("argv"),
                "mode": row.get("mode"),
                "start_ts_ns": row.get("start_ts_ns"),
                "end_ts_ns": row.get("end_ts_ns"),
                "exit_code": row.get("exit_code"),
            }
        )
        entry["memory_stats"] = _eight_metrics(con, pid, int(tracked.get(pid, 0)))
        out.append(entry)
    return out


def memory_over_time(con: duckdb.DuckDBPyConnection, buckets: int) -> list[dict[str, Any]]:
    """Per process: live bytes at the end of each time bucket that saw events.

    Built from the state's fine timeline (``timeline_buckets`` per process): each coarse
    bucket of ``[first event, last event] / buckets`` takes the fine buckets that start in
    it, so a point's time is exact to one fine bucket. ``max_live_bytes`` is the highest
    live bytes any event of the bucket left.
    """
    spans = {
        r["pid"]: r
        for r in rows(
            con,
            "SELECT pid, first_ts_ns, last_ts_ns, origin_ts_ns, width_ns FROM state_processes "
            "ORDER BY pid",
        )
    }
    fine_rows = rows(con, "SELECT * FROM state_timeline ORDER BY pid, bucket")
    by_pid: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in fine_rows:
        by_pid[r["pid"]].append(r)
    out = []
    for pid in sorted(by_pid):
        span = spans[pid]
        lo, hi = span["first_ts_ns"], span["last_ts_ns"]
        width, coarse = rebucket(
            by_pid[pid],
            lo,
            hi,
            buckets,
            lambda r, s=span: s["origin_ts_ns"] + r["bucket"] * s["width_ns"],
        )
        points = []
        for index in sorted(coarse):
            fine = coarse[index]
            points.append(
                {
                    "ts_ns": lo + (index + 1) * width - 1,
                    "live_bytes": fine[-1]["live_bytes"],
                    "max_live_bytes": max(f["max_live_bytes"] for f in fine),
                    "allocations": sum(f["allocations"] for f in fine),
                    "frees": sum(f["frees"] for f in fine),
                    "bytes_allocated": sum(f["bytes_allocated"] for f in fine),
                }
            )
        out.append(
            {"pid": pid, "bucket_ns": width, "resolution_ns": span["width_ns"], "points": points}
        )
    return out


def tracked_variables(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every tracked variable with its category and measured birth/death."""
    found = rows(
        con,
        """SELECT pid, tid, var_id, name, type_name, size, deep_size, scope, created_ts_ns,
                  died_ts_ns, lifetime_ns, alive_at_end
        FROM variables ORDER BY created_ts_ns, pid, var_id""",
    )
    for v in found:
        v["category"], v["subcategory"] = type_names.classify(v["type_name"])
    return [drop_none(v) for v in found]


def memory_hierarchy(variables: list[dict[str, Any]]) -> dict[str, Any]:
    """Category -> subcategory -> type, with sizes, counts and percentages."""
    total = sum(v["size"] for v in variables)
    tree: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for v in variables:
        tree[v["category"]][v["subcategory"]][v["type_name"] or "?"].append(v)
    out: dict[str, Any] = {}
    for category in type_names.CATEGORIES:
        if category not in tree:
            continue
        subs = tree[category]
        cat_size = sum(v["size"] for t in subs.values() for vs in t.values() for v in vs)
        sub_out: dict[str, Any] = {}
        for sub in sorted(subs):
            types = subs[sub]
            sub_size = sum(v["size"] for vs in types.values() for v in vs)
            type_rows = []
            for type_name in sorted(types, key=lambda t: (-sum(v["size"] for v in types[t]), t)):
                vs = types[type_name]
                size = sum(v["size"] for v in vs)
                type_rows.append(
                    {
                        "type_name": type_name,
                        "size_bytes": size,
                        "deep_size_bytes": sum(v["deep_size"] for v in vs),
                        "allocation_count": len(vs),
                        "percentage_of_subcategory": pct(size, sub_size),
                        "percentage_of_total": pct(size, total),
                        "variable_names": sorted({v["name"] for v in vs}),
                    }
                )
            sub_out[sub] = {
                "summary": drop_none(
                    {
                        "total_size_bytes": sub_size,
                        "type_count": len(types),
                        "percentage_of_category": pct(sub_size, cat_size),
                        "percentage_of_total": pct(sub_size, total),
                    }
                ),
                "types": [drop_none(t) for t in type_rows],
            }
        out[category] = {
            "summary": drop_none(
                {
                    "total_size_bytes": cat_size,
                    "subcategory_count": len(subs),
                    "percentage_of_total": pct(cat_size, total),
                }
            ),
            "subcategories": sub_out,
        }
    return out


def top_sites(con: duckdb.DuckDBPyConnection, top_n: int) -> list[dict[str, Any]]:
    """The allocation sites (stacks) that allocated the most bytes."""
    found = rows(
        con,
        """SELECT pid, stack_id, sum(allocations) AS allocations,
                  sum(bytes_allocated) AS bytes_allocated,
                  sum(live_blocks) AS live_allocations, sum(live_bytes) AS live_bytes
        FROM state_sites GROUP BY pid, stack_id
        ORDER BY bytes_allocated DESC, allocations DESC, pid, stack_id LIMIT ?""",
        [top_n],
    )
    add_locations(con, found, trace=True)
    return [drop_none(r) for r in found]


def largest_live(con: duckdb.DuckDBPyConnection, top_n: int) -> list[dict[str, Any]]:
    """The largest blocks still alive at the end of the log."""
    found = rows(
        con,
        """SELECT pid, tid, ts_ns AS allocation_time_ns, address, size AS size_bytes, stack_id
        FROM live ORDER BY size DESC, ts_ns, pid, address LIMIT ?""",
        [top_n],
    )
    add_locations(con, found)
    return [drop_none(r) for r in found]


def run(con: duckdb.DuckDBPyConnection, options: AnalyzerOptions) -> dict[str, Any]:
    """Build the memory analysis report and write it; returns the report."""
    variables = tracked_variables(con)
    pids = process_ids(con)
    report: dict[str, Any] = {
        "metadata": metadata(
            con, FILE_KIND, options, "Memory statistics, type hierarchy and tracked variables"
        ),
        "memory_stats": _eight_metrics(con, None, len(variables)),
        "processes": _processes(con, pids),
        "memory_over_time": memory_over_time(con, options.time_buckets),
        "memory_hierarchy": memory_hierarchy(variables),
        "tracked_variables": variables,
        "top_allocation_sites": top_sites(con, options.top_n),
        "largest_live_allocations": largest_live(con, options.top_n),
        # The dashboard's flame graph and flamegraph.svg: peak and end, from the state.
        "flame_graph": build_flame(
            con, FlameOptions(max_sites=REPORT_FLAME_SITES, max_nodes=REPORT_FLAME_NODES)
        ),
    }
    write_report(report, options, FILE_KIND)
    return report
