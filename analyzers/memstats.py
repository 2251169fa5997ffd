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

import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from memscope.analyzers.views import materialize

if TYPE_CHECKING:  # pragma: no cover
    from memscope.analyzers.follow import LiveStats

#: Buckets used by the exact peak search (more buckets: fewer rows replayed in order).
PEAK_BUCKETS = 4096


#: connection -> cached results; cleared by :func:`forget` whenever the block state changes.
_CACHE: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[str, Any]] = (
    weakref.WeakKeyDictionary())


def forget(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what was computed for ``con`` (its block state changed)."""
    _CACHE.pop(con, None)


def _cached(con: duckdb.DuckDBPyConnection, key: str, compute: Any) -> Any:
    store = _CACHE.setdefault(con, {})
    if key not in store:
        store[key] = compute()
    return store[key]


#: Horvitz-Thompson weight of a sampled block: a block of ``size`` bytes is sampled with
#: probability ``1 - exp(-size / sample_bytes)`` (sampling by byte volume, a Poisson process).
_INV_P = "(1.0 / (1.0 - exp(-(greatest(size, 1)::DOUBLE) / sample_bytes)))"
#: A block's bytes as counted: its size, or in a sampled process the bytes it stands for.
_WEIGHTED = f"round(CASE WHEN sample_bytes IS NULL THEN size ELSE size * {_INV_P} END)::BIGINT"
_SAMPLED_BLOCKS = """(SELECT a.*, r.sample_bytes FROM _allocations a LEFT JOIN (
    SELECT pid, any_value(sample_bytes) AS sample_bytes FROM processes
    WHERE mode = 'sampled' AND sample_bytes > 0 GROUP BY pid) r ON r.pid = a.pid)"""


def _deltas_sql(group: str, weighted: bool = False) -> str:
    """(g, t, pid, seq, is_start, delta) for every start and every counted end of a block.

    ``weighted``: a sampled process's blocks count the bytes they stand for (estimates).
    """
    size, source = (_WEIGHTED, _SAMPLED_BLOCKS) if weighted else ("size::BIGINT", "_allocations")
    return f"""
        SELECT {group} AS g, ts_ns AS t, pid, seq, 1 AS is_start, {size} AS delta
        FROM {source}
        UNION ALL
        SELECT {group} AS g, end_ts_ns AS t, pid, end_seq AS seq, 0 AS is_start,
               -({size}) AS delta
        FROM {source} WHERE end_ts_ns IS NOT NULL"""


_SPANS = """s AS (SELECT unnest(?::BIGINT[]) AS g, unnest(?::BIGINT[]) AS lo,
                         unnest(?::BIGINT[]) AS width)"""


def _peaks(
    con: duckdb.DuckDBPyConnection, by_pid: bool, weighted: bool = False,
) -> dict[int, tuple[int, int | None]]:
    """Exact peak and its first time per pid (``by_pid``) or for all pids together (key 0).

    ``weighted``: sampled processes' blocks count the bytes they stand for (an estimate).
    """
    group = "pid" if by_pid else "0"
    spans = con.execute(
        f"""SELECT {group} AS g, min(ts_ns), max(coalesce(end_ts_ns, ts_ns))
        FROM _allocations GROUP BY g ORDER BY g"""
    ).fetchall()
    if not spans:
        return {}
    groups = [int(g) for g, _, _ in spans]
    los = [int(lo) for _, lo, _ in spans]
    widths = [max(1, (int(hi) - int(lo)) // PEAK_BUCKETS + 1) for _, lo, hi in spans]
    span_params = [groups, los, widths]
    deltas = _deltas_sql(group, weighted)
    buckets = con.execute(
        f"""WITH {_SPANS}, d AS ({deltas}),
        db AS (SELECT d.g, d.delta, (d.t - s.lo) // s.width AS bucket
               FROM d JOIN s ON s.g = d.g),
        b AS (SELECT g, bucket, sum(delta) AS net,
                     coalesce(sum(delta) FILTER (WHERE delta > 0), 0) AS pos
              FROM db GROUP BY g, bucket)
        SELECT g, bucket, sum(net) OVER (PARTITION BY g ORDER BY bucket
                                         ROWS UNBOUNDED PRECEDING) - net AS level0, net, pos
        FROM b ORDER BY g, bucket""",
        span_params,
    ).fetchall()
    per: dict[int, list[tuple[int, int, int, int]]] = {g: [] for g in groups}
    for g, bucket, level0, net, pos in buckets:
        per[int(g)].append((int(bucket), int(level0), int(net), int(pos)))
    best = {g: max([0] + [max(l0, l0 + n) for _, l0, n, _ in rows]) for g, rows in per.items()}
    candidates = [(g, b, l0) for g, rows in per.items() for b, l0, _, pos in rows
                  if l0 + pos > best[g]]
    result: dict[int, tuple[int, int | None]] = {}
    if candidates:
        replayed = con.execute(
            f"""WITH {_SPANS}, d AS ({deltas}),
            c AS (SELECT unnest(?::BIGINT[]) AS g, unnest(?::BIGINT[]) AS bucket,
                         unnest(?::BIGINT[]) AS level0),
            db AS (SELECT d.*, (d.t - s.lo) // s.width AS bucket FROM d JOIN s ON s.g = d.g),
            r AS (SELECT db.g, db.t, c.level0 + sum(db.delta) OVER (
                      PARTITION BY db.g, db.bucket ORDER BY db.t, db.pid, db.seq, db.is_start
                      ROWS UNBOUNDED PRECEDING) AS level
                  FROM db JOIN c ON c.g = db.g AND c.bucket = db.bucket)
            SELECT g, level, t FROM r
            QUALIFY row_number() OVER (PARTITION BY g ORDER BY level DESC, t) = 1""",
            span_params + [[c[0] for c in candidates], [c[1] for c in candidates],
                           [c[2] for c in candidates]],
        ).fetchall()
        for g, level, t in replayed:
            if int(level) >= best[int(g)]:
                result[int(g)] = (int(level), int(t))
    for g in groups:
        if g not in result:
            result[g] = (best[g], _edge_time(con, deltas, span_params, g, per[g], best[g]))
    return result


def _edge_time(
    con: duckdb.DuckDBPyConnection, deltas: str, span_params: list[Any], g: int,
    buckets: list[tuple[int, int, int, int]], best: int,
) -> int | None:
    """When a peak reached at a bucket's end was reached (its last event: all increases)."""
    if best <= 0:
        return None
    for bucket, level0, net, _ in buckets:
        if level0 + net == best:
            row = con.execute(
                f"""WITH {_SPANS}, d AS ({deltas})
                SELECT max(d.t) FROM d JOIN s ON s.g = d.g
                WHERE d.g = ? AND (d.t - s.lo) // s.width = ?""",
                span_params + [g, bucket],
            ).fetchall()[0]
            return int(row[0]) if row[0] is not None else None
    return None


def peak(
    con: duckdb.DuckDBPyConnection, pid: int | None = None, weighted: bool = False,
) -> tuple[int, int | None]:
    """``(peak_memory, peak_ts_ns)``: the exact maximum of live bytes and when it was reached.

    For one pid, or for all pids together (their live bytes summed in time order).
    ``(0, None)`` without allocations. Computed for every pid at once and cached until the
    block state changes. ``weighted``: a sampled process's blocks count the bytes they stand
    for (the estimated peak; the same as unweighted for other modes).
    """
    tag = "_w" if weighted else ""
    by_pid = _cached(con, "peak_by_pid" + tag, lambda: _peaks(con, True, weighted))
    if pid is None:
        if len(by_pid) <= 1:  # one process: its peak is the log's (no second pass)
            return next(iter(by_pid.values()), (0, None))
        return _cached(con, "peak_all" + tag, lambda: _peaks(con, False, weighted)).get(
            0, (0, None))
    return by_pid.get(int(pid), (0, None))


#: log path -> its LiveStats (matching state kept between calls), for :func:`live_stats_for`.
_LIVE: dict[str, LiveStats] = {}
_LIVE_LOCK = threading.Lock()


def live_stats_for(log: str | Path) -> LiveStats:
    """The :class:`memscope.analyzers.follow.LiveStats` of ``log``, made once per log path.

    For a long-lived reader of a growing log (the broker's ``stats`` request): each
    ``.stats(pid)`` call matches only the memory rows written since the previous call instead
    of the whole log. Calls on one log are serialized (one DuckDB connection behind it).
    """
    from memscope.analyzers.follow import LiveStats

    key = str(Path(log).resolve())
    with _LIVE_LOCK:
        live = _LIVE.get(key)
        if live is None:
            live = _LIVE[key] = LiveStats(log)
    return live


def forget_live(log: str | Path) -> None:
    """Drop the state :func:`live_stats_for` keeps for ``log`` (the log was closed)."""
    with _LIVE_LOCK:
        _LIVE.pop(str(Path(log).resolve()), None)


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

    Materializes the block matching on ``con`` first if it is not yet. The totals of every
    pid are computed together and cached on ``con`` until its block state changes, so asking
    for each process in turn costs one pass.

    Keys: ``active_memory``, ``peak_memory``, ``peak_ts_ns``, ``active_allocations``,
    ``total_allocations``, ``total_allocated``, ``total_deallocations``, ``total_freed`` (and
    its synonym ``total_deallocated``, the name ``MemoryStats`` uses),
    ``unmatched_frees``, ``unrecorded_frees``, ``folded_allocations``, ``folded_bytes``,
    ``peak_memory_source`` and ``active_memory_source`` (``"log"`` or ``"measured in
    process"``); ``peak_memory_in_process`` / ``active_memory_in_process`` when an
    aggregated-mode producer measured its own figures; ``modes``: the capture mode of each
    process covered; and for sampled processes the estimates of :func:`_sampled`.

    Aggregated mode folds short-lived pairs at the source, so the log never sees the
    transient that made the peak: for such a process the producer's measured peak (from its
    live map) replaces the log's when it is higher, with ``peak_ts_ns`` None (the measurement
    has no instant). Its measured current bytes replace the log's active bytes when the
    measurement is at least as recent as the process's last memory event. For several
    processes together, the peak is the highest of the log's combined peak and each
    process's own peak (a lower bound; ``peak_memory_source`` says so).
    """
    ensure_materialized(con)
    totals = _cached(con, "totals", lambda: _totals_by_pid(con))
    keys = list(totals) if pid is None else [int(pid)]
    zero = (0,) * 10
    n_alloc, allocated, n_free, freed, n_active, active, reused, unmatched, folded_n, \
        folded_b = (sum(totals.get(k, zero)[i] for k in keys) for i in range(10))
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
        "unmatched_frees": unmatched,
        "unrecorded_frees": reused,
        "folded_allocations": folded_n,
        "folded_bytes": folded_b,
        "peak_memory_source": "log",
        "active_memory_source": "log",
        "modes": sorted({str(totals[k][_MODE]) for k in keys
                         if k in totals and totals[k][_MODE] is not None}),
    }
    _apply_sampled(con, stats, totals, keys, pid)
    _apply_measured(con, stats, totals, keys, pid)
    return stats


#: The totals a sampled process only estimates (its log holds samples, not every block).
ESTIMATED_KEYS = ("total_allocations", "total_allocated", "total_deallocations", "total_freed",
                  "total_deallocated", "active_allocations", "active_memory", "peak_memory")


def _apply_sampled(
    con: duckdb.DuckDBPyConnection, stats: dict[str, Any], totals: dict[int, tuple[Any, ...]],
    keys: list[int], pid: int | None,
) -> None:
    """Scale a sampled process's figures to estimates; keep the raw ones under ``samples``.

    Each sampled block of ``size`` bytes stands for ``1 / p`` blocks and ``size / p`` bytes,
    ``p = 1 - exp(-size / sample_bytes)`` (the probability that sampling by byte volume picks
    it): the Horvitz-Thompson estimator, unbiased for counts and bytes.
    """
    sampled = [k for k in keys if k in totals and totals[k][_MODE] == "sampled"
               and totals[k][_SAMPLE_BYTES]]
    if not sampled:
        return
    est = _cached(con, "estimates", lambda: _estimates_by_pid(con))
    raw = [sum(totals[k][i] for k in sampled) for i in (0, 1, 2, 3, 4, 5)]
    guess = [sum(est.get(k, (0.0,) * 6)[i] for k in sampled) for i in range(6)]
    samples = dict(zip(("allocations", "allocated", "deallocations", "freed",
                        "active_allocations", "active_memory"), raw, strict=True))
    targets = ("total_allocations", "total_allocated", "total_deallocations", "total_freed",
               "active_allocations", "active_memory")
    for key, r, g in zip(targets, raw, guess, strict=True):
        stats[key] += round(g) - r
    stats["total_deallocated"] = stats["total_freed"]
    if len(sampled) == len(keys):
        samples["peak_memory"] = stats["peak_memory"]
    stats["peak_memory"], stats["peak_ts_ns"] = peak(con, pid, weighted=True)
    stats["samples"] = samples
    stats["estimated"] = True
    stats["estimated_keys"] = list(ESTIMATED_KEYS)
    stats["sample_bytes"] = sorted({int(totals[k][_SAMPLE_BYTES]) for k in sampled})


def _estimates_by_pid(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[float, ...]]:
    """Per sampled pid: estimated (blocks, bytes, freed blocks, freed bytes, live, live bytes)."""
    found = con.execute(
        f"""SELECT pid, sum({_INV_P}), sum(size * {_INV_P}),
            coalesce(sum({_INV_P}) FILTER (WHERE free_ts_ns IS NOT NULL), 0),
            coalesce(sum(size * {_INV_P}) FILTER (WHERE free_ts_ns IS NOT NULL), 0),
            coalesce(sum({_INV_P}) FILTER (WHERE end_ts_ns IS NULL), 0),
            coalesce(sum(size * {_INV_P}) FILTER (WHERE end_ts_ns IS NULL), 0)
        FROM {_SAMPLED_BLOCKS} WHERE sample_bytes IS NOT NULL GROUP BY pid ORDER BY pid"""
    ).fetchall()
    return {int(r[0]): tuple(float(v) for v in r[1:]) for r in found}


#: Indexes of the extra per-pid values of :func:`_totals_by_pid` after the ten sums.
_PEAK_IN, _CURRENT_IN, _MEASURED_TS, _LAST_TS, _MODE, _SAMPLE_BYTES = range(10, 16)
MEASURED = "measured in process"


def _apply_measured(
    con: duckdb.DuckDBPyConnection, stats: dict[str, Any], totals: dict[int, tuple[Any, ...]],
    keys: list[int], pid: int | None,
) -> None:
    """Use aggregated-mode producers' own measurements where the log cannot know better."""
    measured = {k: totals[k] for k in keys
                if k in totals and totals[k][_MODE] == "aggregated"
                and totals[k][_PEAK_IN] is not None}
    if not measured:
        return
    stats["peak_memory_in_process"] = max(int(t[_PEAK_IN]) for t in measured.values())
    own_peaks = {k: max(int(t[_PEAK_IN]), peak(con, k)[0]) for k, t in measured.items()}
    best = max(own_peaks.values())
    if best > stats["peak_memory"]:
        stats["peak_memory"], stats["peak_ts_ns"] = best, None
        stats["peak_memory_source"] = MEASURED if pid is not None or len(keys) == 1 else (
            MEASURED + "; the highest single process, a lower bound for all together")
    fresh = {k: t for k, t in measured.items()
             if t[_CURRENT_IN] is not None
             and (t[_LAST_TS] is None or t[_MEASURED_TS] >= t[_LAST_TS])}
    if fresh:
        stats["active_memory_in_process"] = sum(int(t[_CURRENT_IN]) for t in fresh.values())
        logged = sum(int(t[5]) for t in fresh.values())
        stats["active_memory"] += stats["active_memory_in_process"] - logged
        stats["active_memory_source"] = MEASURED


def _totals_by_pid(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[Any, ...]]:
    """Per pid: the ten numbers :func:`process_stats` sums, then what it needs besides.

    (blocks, bytes, freed blocks, freed bytes, live blocks, live bytes, reused, unmatched
    frees, folded pairs, folded bytes; in-process peak, in-process current bytes, the time of
    that measurement, the last memory event's time, mode, sample_bytes -- each None when
    unknown).
    """
    found = con.execute(
        """WITH a AS (
            SELECT pid, count(*) AS n, coalesce(sum(size), 0) AS b,
                count(free_ts_ns) AS nf,
                coalesce(sum(size) FILTER (WHERE free_ts_ns IS NOT NULL), 0) AS bf,
                count(*) FILTER (WHERE end_ts_ns IS NULL) AS na,
                coalesce(sum(size) FILTER (WHERE end_ts_ns IS NULL), 0) AS ba,
                count(reused_ts_ns) AS nr,
                max(coalesce(end_ts_ns, ts_ns)) AS last_ts
            FROM _allocations GROUP BY pid),
        u AS (SELECT pid, count(*) AS nu FROM _notable_ends WHERE NOT matched GROUP BY pid),
        f AS (SELECT pid, sum(alloc_count) AS fn, sum(alloc_bytes) AS fb
              FROM raw_aggregates GROUP BY pid),
        p AS (SELECT pid, max(peak_bytes) AS pk, any_value(current_bytes) AS cb,
                     max(ts_ns) AS mts
              FROM producer_stats_latest GROUP BY pid),
        m AS (SELECT pid, any_value(mode) AS mode, any_value(sample_bytes) AS sb
              FROM processes GROUP BY pid),
        ids AS (SELECT pid FROM a UNION SELECT pid FROM u UNION SELECT pid FROM f
                UNION SELECT pid FROM p)
        SELECT ids.pid, coalesce(n, 0), coalesce(b, 0), coalesce(nf, 0), coalesce(bf, 0),
               coalesce(na, 0), coalesce(ba, 0), coalesce(nr, 0), coalesce(nu, 0),
               coalesce(fn, 0), coalesce(fb, 0), pk, cb, mts, last_ts, mode, sb
        FROM ids LEFT JOIN a ON a.pid = ids.pid LEFT JOIN u ON u.pid = ids.pid
        LEFT JOIN f ON f.pid = ids.pid LEFT JOIN p ON p.pid = ids.pid
        LEFT JOIN m ON m.pid = ids.pid ORDER BY ids.pid"""
    ).fetchall()
    return {int(r[0]): tuple(int(v) for v in r[1:11]) + tuple(r[11:]) for r in found}
