"""Exact memory totals of a log: what ``Tracker.get_stats()`` and ``memscope stats`` print.

Every figure is read from the analysis state (:mod:`memscope.analyzers.state`), which folded
each memory event once; nothing here scans events. Definitions:

* ``total_allocations`` / ``total_allocated``: blocks started (alloc, calloc, and the new block
  of every realloc) and their bytes, plus the short-lived pairs an aggregated-mode producer
  folded at the source (``aggregates``), which are also counted as freed.
* ``total_deallocations`` / ``total_freed``: blocks ended by a free or a realloc, and the bytes
  they held.
* ``active_allocations`` / ``active_memory``: blocks still alive at the end of the log.
* ``peak_memory``: the maximum of the live bytes, events taken in the fold's order (a
  process's events in time order, a block's end before a start at the same instant), and
  ``peak_ts_ns`` when it was first reached. For several processes together, their live bytes
  summed in that order.

Frees the log cannot match:

* A free of an address with no allocation before it in the log (a block allocated before
  tracing started, or by an untraced thread) is **ignored** by every total above: its size is
  unknown. It is counted in ``unmatched_frees``.
* An address handed out again with no free in between means the free was not recorded. The
  older block stops counting as alive at the reuse (it is not in ``total_deallocations``) and
  is counted in ``unrecorded_frees``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb

#: The totals a sampled process only estimates (its log holds samples, not every block).
ESTIMATED_KEYS = (
    "total_allocations",
    "total_allocated",
    "total_deallocations",
    "total_freed",
    "total_deallocated",
    "active_allocations",
    "active_memory",
    "peak_memory",
)
MEASURED = "measured in process"

_PROCESS_SQL = """
    WITH f AS (SELECT pid, sum(alloc_count) AS fn, sum(alloc_bytes) AS fb
               FROM raw_aggregates GROUP BY pid),
    p AS (SELECT pid, max(peak_bytes) AS pk, any_value(current_bytes) AS cb, max(ts_ns) AS mts
          FROM producer_stats_latest GROUP BY pid),
    m AS (SELECT pid, any_value(mode) AS mode, any_value(sample_bytes) AS sb
          FROM processes GROUP BY pid),
    ids AS (SELECT pid FROM state_processes UNION SELECT pid FROM f UNION SELECT pid FROM p)
    SELECT ids.pid, s.allocations, s.bytes_allocated, s.frees, s.bytes_freed, s.live_blocks,
        s.live_bytes, s.reused, s.unmatched_frees, coalesce(f.fn, 0) AS folded_n,
        coalesce(f.fb, 0) AS folded_b, s.peak_bytes, s.peak_ts_ns, s.last_ts_ns,
        p.pk AS peak_in, p.cb AS current_in, p.mts AS measured_ts, m.mode, m.sb,
        s.sample_bytes AS fold_sample_bytes, s.w_allocations, s.w_bytes_allocated,
        s.w_frees, s.w_bytes_freed, s.w_live_blocks, s.w_live_bytes, s.w_peak_bytes,
        s.w_peak_ts_ns
    FROM ids LEFT JOIN state_processes s ON s.pid = ids.pid
    LEFT JOIN f ON f.pid = ids.pid LEFT JOIN p ON p.pid = ids.pid
    LEFT JOIN m ON m.pid = ids.pid ORDER BY ids.pid"""


def _per_pid(con: duckdb.DuckDBPyConnection) -> dict[int, dict[str, Any]]:
    cur = con.execute(_PROCESS_SQL)
    names = [d[0] for d in cur.description]
    out = {}
    for row in cur.fetchall():
        values = dict(zip(names, row, strict=True))
        for key in (
            "allocations",
            "bytes_allocated",
            "frees",
            "bytes_freed",
            "live_blocks",
            "live_bytes",
            "reused",
            "unmatched_frees",
            "peak_bytes",
        ):
            values[key] = int(values[key] or 0)
        out[int(values["pid"])] = values
    return out


def _ts(value: Any) -> int | None:
    return int(value) if value is not None and int(value) >= 0 else None


def peak(
    con: duckdb.DuckDBPyConnection, pid: int | None = None, weighted: bool = False
) -> tuple[int, int | None]:
    """``(peak_memory, peak_ts_ns)`` of one process or of all together; ``(0, None)`` if none.

    ``weighted``: a sampled process's blocks count the bytes they stand for (the estimate).
    """
    if pid is None:
        found = con.execute(
            "SELECT peak_bytes, peak_ts_ns, w_peak_bytes, w_peak_ts_ns FROM state_all"
        ).fetchall()
    else:
        found = con.execute(
            "SELECT peak_bytes, peak_ts_ns, CASE WHEN sample_bytes > 0 THEN "
            "w_peak_bytes ELSE peak_bytes END, CASE WHEN sample_bytes > 0 "
            "THEN w_peak_ts_ns ELSE peak_ts_ns END "
            "FROM state_processes WHERE pid = ?",
            [int(pid)],
        ).fetchall()
    if not found:
        return 0, None
    nbytes, ts, w_bytes, w_ts = found[0]
    if weighted:
        nbytes, ts = w_bytes, w_ts
    return (int(nbytes), _ts(ts)) if nbytes else (0, None)


def process_stats(con: duckdb.DuckDBPyConnection, pid: int | None = None) -> dict[str, Any]:
    """The exact totals of one process (``pid``) or of every process in the log together.

    ``con`` holds the analysis state (:func:`memscope.analyzers.views.use_state`).

    Keys: ``active_memory``, ``peak_memory``, ``peak_ts_ns``, ``active_allocations``,
    ``total_allocations``, ``total_allocated``, ``total_deallocations``, ``total_freed`` (and
    its synonym ``total_deallocated``, the name ``MemoryStats`` uses),
    ``unmatched_frees``, ``unrecorded_frees``, ``folded_allocations``, ``folded_bytes``,
    ``peak_memory_source`` and ``active_memory_source`` (``"log"`` or ``"measured in
    process"``); ``peak_memory_in_process`` / ``active_memory_in_process`` when an
    aggregated-mode producer measured its own figures; ``modes``: the capture mode of each
    process covered; and for sampled processes the estimates of :func:`_apply_sampled`.

    Aggregated mode folds short-lived pairs at the source, so the log never sees the
    transient that made the peak: for such a process the producer's measured peak (from its
    live map) replaces the log's when it is higher, with ``peak_ts_ns`` None (the measurement
    has no instant). Its measured current bytes replace the log's active bytes when the
    measurement is at least as recent as the process's last memory event. For several
    processes together, the peak is the highest of the log's combined peak and each
    process's own peak (a lower bound; ``peak_memory_source`` says so).
    """
    return _stats(con, _per_pid(con), pid)


def each_process_stats(
    con: duckdb.DuckDBPyConnection, pids: list[int]
) -> dict[int, dict[str, Any]]:
    """:func:`process_stats` of each of ``pids``, reading the per-process figures once."""
    per = _per_pid(con)
    return {int(pid): _stats(con, per, int(pid)) for pid in pids}


def counter_figures(
    total: Callable[[str], int],
    peak_bytes: int,
    peak_ts: int | None,
    folded_n: int = 0,
    folded_b: int = 0,
) -> dict[str, Any]:
    """The stats every reply has, from the fold's ``processes`` counters (``total(name)``).

    ``folded_n`` / ``folded_b``: aggregated mode's pairs folded at the source (counted as
    allocated and freed). Both :func:`process_stats` and the running totals
    (:func:`memscope.analyzers.live_totals.full_mode_figures`) answer with it.
    """
    return {
        "active_memory": total("live_bytes"),
        "peak_memory": peak_bytes,
        "peak_ts_ns": peak_ts,
        "active_allocations": total("live_blocks"),
        "total_allocations": total("allocations") + folded_n,
        "total_allocated": total("bytes_allocated") + folded_b,
        "total_deallocations": total("frees") + folded_n,
        "total_freed": total("bytes_freed") + folded_b,
        "total_deallocated": total("bytes_freed") + folded_b,
        "unmatched_frees": total("unmatched_frees"),
        "unrecorded_frees": total("reused"),
        "folded_allocations": folded_n,
        "folded_bytes": folded_b,
        "peak_memory_source": "log",
        "active_memory_source": "log",
    }


def _stats(
    con: duckdb.DuckDBPyConnection, per: dict[int, dict[str, Any]], pid: int | None
) -> dict[str, Any]:
    keys = list(per) if pid is None else [int(pid)]
    rows = [per[k] for k in keys if k in per]

    def total(name: str) -> int:
        return sum(int(r[name] or 0) for r in rows)

    folded_n, folded_b = total("folded_n"), total("folded_b")
    peak_bytes, peak_ts = peak(con, pid)
    stats = counter_figures(total, peak_bytes, peak_ts, folded_n, folded_b)
    stats["modes"] = sorted({str(r["mode"]) for r in rows if r["mode"] is not None})
    _apply_sampled(con, stats, rows, pid)
    _apply_measured(con, stats, rows, pid, len(keys))
    return stats


def _apply_sampled(
    con: duckdb.DuckDBPyConnection,
    stats: dict[str, Any],
    rows: list[dict[str, Any]],
    pid: int | None,
) -> None:
    """Scale a sampled process's figures to estimates; keep the raw ones under ``samples``.

    Each sampled block of ``size`` bytes stands for ``1 / p`` blocks and ``size / p`` bytes,
    ``p = 1 - exp(-size / sample_bytes)`` (the probability that sampling by byte volume picks
    it): the Horvitz-Thompson estimator, unbiased for counts and bytes.
    """
    sampled = [r for r in rows if r["mode"] == "sampled" and r["fold_sample_bytes"]]
    if not sampled:
        return
    raw_keys = (
        "allocations",
        "bytes_allocated",
        "frees",
        "bytes_freed",
        "live_blocks",
        "live_bytes",
    )
    raw = [sum(int(r[k] or 0) for r in sampled) for k in raw_keys]
    guess = [sum(float(r[f"w_{k}"] or 0.0) for r in sampled) for k in raw_keys]
    samples = dict(
        zip(
            (
                "allocations",
                "allocated",
                "deallocations",
                "freed",
                "active_allocations",
                "active_memory",
            ),
            raw,
            strict=True,
        )
    )
    targets = (
        "total_allocations",
        "total_allocated",
        "total_deallocations",
        "total_freed",
        "active_allocations",
        "active_memory",
    )
    for key, r, g in zip(targets, raw, guess, strict=True):
        stats[key] += round(g) - r
    stats["total_deallocated"] = stats["total_freed"]
    if len(sampled) == len(rows):
        samples["peak_memory"] = stats["peak_memory"]
    stats["peak_memory"], stats["peak_ts_ns"] = peak(con, pid, weighted=True)
    stats["samples"] = samples
    stats["estimated"] = True
    stats["estimated_keys"] = list(ESTIMATED_KEYS)
    stats["sample_bytes"] = sorted({int(r["fold_sample_bytes"]) for r in sampled})


def _apply_measured(
    con: duckdb.DuckDBPyConnection,
    stats: dict[str, Any],
    rows: list[dict[str, Any]],
    pid: int | None,
    n_keys: int,
) -> None:
    """Use aggregated-mode producers' own measurements where the log cannot know better."""
    measured = [r for r in rows if r["mode"] == "aggregated" and r["peak_in"] is not None]
    if not measured:
        return
    stats["peak_memory_in_process"] = max(int(r["peak_in"]) for r in measured)
    best = max(max(int(r["peak_in"]), int(r["peak_bytes"] or 0)) for r in measured)
    if best > stats["peak_memory"]:
        stats["peak_memory"], stats["peak_ts_ns"] = best, None
        stats["peak_memory_source"] = (
            MEASURED
            if pid is not None or n_keys == 1
            else (MEASURED + "; the highest single process, a lower bound for all together")
        )
    fresh = [
        r
        for r in measured
        if r["current_in"] is not None
        and (
            r["last_ts_ns"] is None
            or int(r["last_ts_ns"]) < 0
            or r["measured_ts"] >= r["last_ts_ns"]
        )
    ]
    if fresh:
        stats["active_memory_in_process"] = sum(int(r["current_in"]) for r in fresh)
        logged = sum(int(r["live_bytes"] or 0) for r in fresh)
        stats["active_memory"] += stats["active_memory_in_process"] - logged
        stats["active_memory_source"] = MEASURED
