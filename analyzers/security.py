"""The security analyzer: ``<base>_security_violations.json``.

Findings (``violation_reports``), each with kind, severity, the real stack of the event that
proves it, related allocations and a remediation line:

``double_free`` (critical)
    a block's address freed twice with no allocation of that address in between from any
    thread: the log holds the allocation, its free, and the second free, and the second free
    has a Python stack and runs on the allocating thread, as the first free does (a traced
    thread, so an allocation between the frees would be in the log, and the three events are
    in that thread's own order), all three in one allocator domain. The finding shows all
    three stacks. Any other such pattern
    -- a free on another thread or without a Python stack -- is not a finding: an
    allocation the tracer never saw (on its ignored publisher thread, made by the tracer
    itself, while tracing was off) reusing the address produces the same events. Those
    patterns are only counted, in ``summary.unprovable_double_free_patterns``. Not reported
    for sampled processes (a sample does not see every allocation).
``domain_mismatch`` (high)
    a block ended by a free/realloc of another allocator domain than the one it came from
    (e.g. ``PyMem_Malloc`` memory released with ``PyObject_Free``).
``leak`` (high / medium)
    allocation sites whose blocks are alive at exit (or at the end of the log) *and* whose
    live bytes keep growing. The process's time span is cut at ``leak_checkpoints`` nearly
    equal steps (ends of the state's 32 time slots per process); at each checkpoint the
    site's live bytes are read from the state. ``confidence`` is
    ``high`` when they never shrink and grow at half the steps or more, ``medium`` when they
    grow more often than they shrink (at least two growing steps either way: one late block
    is not growth); ``growth_ratio`` = growing steps / steps. Sites alive at
    exit that do not grow are summarized as ``retained_at_exit`` (not findings).
``invalid_free`` (high)
    a free of an address strictly inside a block of the same domain that is alive at that
    moment (two live blocks never overlap, so the pointer is not one the allocator returned).
    The fold checks each free of an address it never saw allocated when it happens, for up
    to ``FoldParams.max_interior_checks`` such frees per process
    (``summary.invalid_free_checked`` says whether every one was checked).

Every count comes from the analysis state (:mod:`memscope.analyzers.fold`), which keeps the
first 1,000 findings of each kind per process; the counts cover all of them.
``oversized_allocation`` (medium)
    one block of at least ``oversized_bytes``.

``summary`` also counts what the log cannot prove wrong: frees of blocks it never saw
allocated (allocated before tracing, or by an untraced thread) and addresses reused with no
recorded free.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from memscope.analyzers.common import (
    AnalyzerOptions,
    drop_none,
    metadata,
    rows,
    stack_info,
    write_report,
)
from memscope.analyzers.fold import DOMAIN_MISMATCH, INTERIOR_FREE, REPEATED_END, FoldParams
from memscope.analyzers.stacks import add_locations
from memscope.protocol.wire import DOMAIN_NAMES, DOMAIN_NATIVE, KIND_NAMES

KIND = "security"
FILE_KIND = "security_violations"

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
#: Findings of one kind kept in the file (the summary counts all of them).
MAX_FINDINGS_PER_KIND = 1000

_NOT_SAMPLED = "pid NOT IN (SELECT pid FROM processes WHERE mode = 'sampled')"


#: The state's kept findings with their allocation as ``a_*`` columns (``f`` in filters).
_FINDINGS = """SELECT type, pid, tid, seq, ts_ns, address, kind, domain, stack_id,
        alloc_ts_ns AS a_ts, size AS a_size, alloc_domain AS a_domain,
        alloc_stack_id AS a_stack, alloc_tid AS a_tid, block_address,
        prev_end_ts_ns AS previous_end_ts_ns, prev_end_tid, prev_end_stack_id, prev_end_kind
    FROM state_findings"""


def _alloc(con: duckdb.DuckDBPyConnection, r: dict[str, Any]) -> dict:
    if r["a_ts"] is None or r["a_ts"] < 0:
        return {}
    return {
        "role": "allocation",
        "ts_ns": r["a_ts"],
        "address": r["block_address"],
        "size": r["a_size"],
        "domain": DOMAIN_NAMES.get(r["a_domain"], str(r["a_domain"])),
        "tid": r["a_tid"],
        "stack": stack_info(con, r["pid"], r["a_stack"]),
    }


#: A domain mismatch at a repeated end's first free (``f`` the repeated end).
_MISMATCH_AT_FIRST_FREE = f"""SELECT 1 FROM state_findings m WHERE m.type = {DOMAIN_MISMATCH}
    AND m.pid = f.pid AND m.address = f.address AND m.ts_ns = f.previous_end_ts_ns"""


def _findings(
    con: duckdb.DuckDBPyConnection, type_code: int, where: str = "TRUE"
) -> list[dict[str, Any]]:
    """The kept findings of one type (``f`` the finding row in ``where``), in time order."""
    return rows(
        con,
        f"""SELECT * FROM ({_FINDINGS}) f WHERE f.type = ? AND ({where})
        ORDER BY f.ts_ns, f.pid, f.seq""",
        [type_code],
    )


def _total(con: duckdb.DuckDBPyConnection, column: str, where: str = "TRUE") -> int:
    """A counter of ``state_processes`` summed over the processes (``where`` filters)."""
    found = con.execute(
        f"SELECT coalesce(sum({column}), 0) FROM state_processes WHERE {where}"
    ).fetchall()
    return int(found[0][0])


#: A repeated native free is proven when native mode's shim, which knows every live heap
#: block of the process, blocked a double free of that address (an ``ffi`` finding row).
_BLOCKED_BY_SHIM = f"""(f.domain = {DOMAIN_NATIVE} AND (f.pid, f.address) IN (
    SELECT pid, CAST(('0x' || lower(ltrim(json_extract_string(details, '$.address'), '0x')))
                     AS UBIGINT)
    FROM ffi WHERE event = 'native.double_free'))"""


def double_frees(con: duckdb.DuckDBPyConnection) -> tuple[int, list[dict[str, Any]], int]:
    """Provable second frees of an already freed block.

    Returns (count, findings, unprovable patterns): a repeated free counts as a double free
    only when it has a Python stack and runs on the thread that allocated the block, or when
    native mode's shim blocked it (it knows every live heap block); the other repeated frees
    (which an untraced allocation in between would explain) are only counted.
    """
    # the first free on the allocating thread too: then the three events' order is that
    # thread's own (frees on other threads are ordered by clocks, which may disagree a little)
    # ... and the same kind of block freed twice the same way: the allocation and both frees
    # in one domain (a first free in another domain is a domain_mismatch finding of its own)
    found = _findings(
        con,
        REPEATED_END,
        f"f.{_NOT_SAMPLED} AND ((f.stack_id <> 0 AND "
        f"f.a_tid = f.tid AND f.prev_end_tid = f.tid AND "
        f"f.domain = f.a_domain AND NOT EXISTS ("
        f"{_MISMATCH_AT_FIRST_FREE})) OR {_BLOCKED_BY_SHIM})",
    )
    patterns = _total(con, "repeated_ends", _NOT_SAMPLED)
    out = []
    for r in found[:MAX_FINDINGS_PER_KIND]:
        alloc = _alloc(con, r)
        out.append(
            {
                "kind": "double_free",
                "severity": "critical",
                "confidence": "high",
                "pid": r["pid"],
                "tid": r["tid"],
                "ts_ns": r["ts_ns"],
                "address": r["address"],
                "message": (
                    f"{KIND_NAMES.get(r['kind'], r['kind'])} of address {r['address']:#x} "
                    f"already freed at ts_ns {r['previous_end_ts_ns']}"
                    + (
                        f"; allocated at ts_ns {alloc['ts_ns']} ({alloc['size']} bytes)"
                        if alloc
                        else ""
                    )
                    + "; no allocation of that address in between on any traced thread"
                ),
                "stack": stack_info(con, r["pid"], r["stack_id"]),
                "related_allocations": ([alloc] if alloc else [])
                + [
                    drop_none(
                        {
                            "role": "first_free",
                            "ts_ns": r["previous_end_ts_ns"],
                            "address": r["address"],
                            "tid": r["prev_end_tid"],
                            "stack": (
                                stack_info(con, r["pid"], r["prev_end_stack_id"])
                                if r["prev_end_stack_id"]
                                else None
                            ),
                        }
                    )
                ],
                "remediation": (
                    "Free each block once: clear the pointer after freeing it, and check "
                    "which owner (C extension, ctypes/cffi code) releases it."
                ),
            }
        )
    return len(found), out, patterns - len(found)


def domain_mismatches(con: duckdb.DuckDBPyConnection) -> tuple[int, list[dict[str, Any]]]:
    """Blocks released through another allocator domain than they came from."""
    found = _findings(con, DOMAIN_MISMATCH)
    out = []
    for r in found[:MAX_FINDINGS_PER_KIND]:
        alloc = _alloc(con, r)
        came, went = (
            DOMAIN_NAMES.get(r["a_domain"], str(r["a_domain"])),
            DOMAIN_NAMES.get(r["domain"], str(r["domain"])),
        )
        out.append(
            {
                "kind": "domain_mismatch",
                "severity": "high",
                "pid": r["pid"],
                "tid": r["tid"],
                "ts_ns": r["ts_ns"],
                "address": r["address"],
                "allocated_domain": came,
                "freed_domain": went,
                "message": f"block {r['address']:#x} allocated in the {came} domain was released "
                f"by a {went}-domain {KIND_NAMES.get(r['kind'], r['kind'])}",
                "stack": stack_info(con, r["pid"], r["stack_id"]),
                "related_allocations": [alloc] if alloc else [],
                "remediation": "Release memory with the free function of the family that allocated "
                "it (PyMem_Free for PyMem_Malloc, PyObject_Free for PyObject_Malloc, "
                "PyMem_RawFree for PyMem_RawMalloc).",
            }
        )
    return _total(con, "domain_mismatches"), out


def leak_sites(con: duckdb.DuckDBPyConnection, checkpoints: int) -> dict[str, np.ndarray]:
    """Every site with blocks alive at the end, with its live bytes at each checkpoint.

    The state keeps each site's live bytes at the end of ``site_slots`` equal time slots of
    its process; the checkpoints are the ends of the slots that cut the process's span
    (its first event to the later of its last event and its exit) into ``checkpoints``
    nearly equal steps. Computed with numpy over every live site at once (a deep program has
    hundreds of thousands), in the order the findings list them (live bytes, largest
    first). Columns: pid, stack_id, blocks, bytes, live (``[sites, checkpoints]``),
    process_exited.
    """
    k = max(2, int(checkpoints))
    sites = con.sql(
        "SELECT pid, stack_id, live_blocks, live_bytes, series FROM state_sites "
        "WHERE live_blocks > 0"
    ).to_arrow_table()
    empty = {
        "pid": np.zeros(0, np.int64),
        "stack_id": np.zeros(0, np.int64),
        "blocks": np.zeros(0, np.int64),
        "bytes": np.zeros(0, np.int64),
        "live": np.zeros((0, k), np.int64),
        "process_exited": np.zeros(0, bool),
    }
    if not sites.num_rows:
        return empty
    pid = sites.column("pid").to_numpy().astype(np.int64)
    stack = sites.column("stack_id").to_numpy().astype(np.int64)
    series_column = sites.column("series").combine_chunks()
    slots = series_column.type.list_size
    series = series_column.flatten().to_numpy().reshape(-1, slots)
    # one row per (pid, stack): the domains of a site summed
    keys, index = np.unique((pid << 32) | stack, return_inverse=True)
    blocks = np.zeros(len(keys), np.int64)
    nbytes = np.zeros(len(keys), np.int64)
    summed = np.zeros((len(keys), slots), np.int64)
    np.add.at(blocks, index, sites.column("live_blocks").to_numpy())
    np.add.at(nbytes, index, sites.column("live_bytes").to_numpy())
    np.add.at(summed, index, series)
    group_pid = keys >> 32
    spans = {
        int(r[0]): r[1:]
        for r in con.execute(
            """SELECT s.pid, s.origin_ts_ns, s.width_ns, greatest(s.last_ts_ns,
                  coalesce(p.end_ts_ns, s.last_ts_ns)), p.end_ts_ns IS NOT NULL
        FROM state_processes s LEFT JOIN processes p ON p.pid = s.pid"""
        ).fetchall()
    }
    slot_buckets = _slot_buckets(con, slots)
    last = np.array(
        [
            min(
                slots - 1,
                max(0, (int(spans[p][2]) - int(spans[p][0])) // (int(spans[p][1]) * slot_buckets)),
            )
            for p in group_pid.tolist()
        ],
        dtype=np.int64,
    )
    steps = np.arange(1, k + 1, dtype=np.int64)
    at = np.maximum(0, ((last[:, None] + 1) * steps[None, :]) // k - 1)
    live = np.take_along_axis(summed, at, axis=1)
    order = np.lexsort((keys & 0xFFFFFFFF, group_pid, -nbytes))
    exited = np.array([bool(spans[p][3]) for p in group_pid.tolist()], dtype=bool)
    return {
        "pid": group_pid[order],
        "stack_id": (keys & 0xFFFFFFFF)[order],
        "blocks": blocks[order],
        "bytes": nbytes[order],
        "live": live[order],
        "process_exited": exited[order],
    }


def _slot_buckets(con: duckdb.DuckDBPyConnection, slots: int) -> int:
    """Fine timeline buckets per site slot (the fold's ``timeline_buckets / site_slots``)."""
    return FoldParams().timeline_buckets // slots


def leaks(
    con: duckdb.DuckDBPyConnection, checkpoints: int
) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, int]]:
    """Leak findings, the totals of the sites alive at exit that do not grow, and counts.

    Only the first :data:`MAX_FINDINGS_PER_KIND` findings are built (their stacks resolved);
    the counts (by severity) cover every leaking site.
    """
    k = max(2, int(checkpoints))
    sites = leak_sites(con, k)
    steps = np.diff(sites["live"], axis=1)
    grows, shrinks = (steps > 0).sum(axis=1), (steps < 0).sum(axis=1)
    high = (grows >= 2) & (shrinks == 0) & (grows * 2 >= k - 1)
    medium = ~high & (grows >= 2) & (grows > shrinks)
    kept = ~(high | medium)
    retained = {
        "sites": int(kept.sum()),
        "blocks": int(sites["blocks"][kept].sum()),
        "bytes": int(sites["bytes"][kept].sum()),
    }
    counts = {
        name: int(mask.sum()) for name, mask in (("high", high), ("medium", medium)) if mask.any()
    }
    chosen = np.flatnonzero(high | medium)[:MAX_FINDINGS_PER_KIND]
    found = [{"pid": int(sites["pid"][i]), "stack_id": int(sites["stack_id"][i])} for i in chosen]
    add_locations(con, found)
    samples = _samples_live(con, [(f["pid"], f["stack_id"]) for f in found])
    out: list[dict[str, Any]] = []
    for i, site in zip(chosen.tolist(), found, strict=True):
        severity = confidence = "high" if high[i] else "medium"
        g, sh = int(grows[i]), int(shrinks[i])
        blocks, nbytes = int(sites["blocks"][i]), int(sites["bytes"][i])
        exited = bool(sites["process_exited"][i])
        where = "at exit" if exited else "at the end of the log"
        out.append(
            {
                "kind": "leak",
                "severity": severity,
                "pid": site["pid"],
                "confidence": confidence,
                "growth_ratio": round(g / (k - 1), 3),
                "alive_blocks": blocks,
                "alive_bytes": nbytes,
                "process_exited": exited,
                "live_bytes_at_checkpoints": [int(v) for v in sites["live"][i]],
                "message": f"{blocks} blocks ({nbytes} bytes) from "
                f"{site['location'] or 'stack ' + str(site['stack_id'])} alive {where}; "
                f"live bytes grew at {g} of {k - 1} checkpoints and shrank at {sh}",
                "stack": stack_info(con, site["pid"], site["stack_id"]),
                "related_allocations": samples.get((site["pid"], site["stack_id"]), []),
                "remediation": "Find who keeps these objects reachable (caches, module globals, "
                "growing lists or dicts) and bound or clear it.",
            }
        )
    return out, retained, counts


def _samples_live(
    con: duckdb.DuckDBPyConnection, sites: list[tuple[int, int]]
) -> dict[tuple[int, int], list[dict]]:
    """Per (pid, stack) of ``sites``: its five largest blocks alive at the end."""
    out: dict[tuple[int, int], list[dict]] = {}
    if not sites:
        return out
    wanted = pa.table(
        {
            "pid": pa.array([p for p, _ in sites], pa.uint32()),
            "stack_id": pa.array([s for _, s in sites], pa.uint32()),
        }
    )
    con.register("_leak_sites", wanted)
    try:
        found = rows(
            con,
            """SELECT l.pid, l.stack_id, l.ts_ns, l.address, l.size FROM live l
            JOIN _leak_sites w ON w.pid = l.pid AND w.stack_id = l.stack_id
            QUALIFY row_number() OVER (PARTITION BY l.pid, l.stack_id
                                       ORDER BY l.size DESC, l.ts_ns, l.address) <= 5
            ORDER BY l.pid, l.stack_id, l.size DESC, l.ts_ns, l.address""",
        )
    finally:
        con.unregister("_leak_sites")
    for r in found:
        out.setdefault((r.pop("pid"), r.pop("stack_id")), []).append({"role": "alive", **r})
    return out


def interior_frees(con: duckdb.DuckDBPyConnection) -> tuple[int, list[dict[str, Any]], bool]:
    """Frees of an address strictly inside a block of the same domain alive at that moment.

    The fold checks every free of an address the log never saw allocated (a repeated free
    is a double free instead) against the live blocks of its process when it happens
    (:mod:`memscope.analyzers.fold`). Returns (count, findings, checked): ``checked`` is
    False when some process had more unmatched frees than the fold checks.
    """
    found = _findings(con, INTERIOR_FREE)
    out = []
    for r in found[:MAX_FINDINGS_PER_KIND]:
        offset = r["address"] - r["block_address"]
        out.append(
            {
                "kind": "invalid_free",
                "severity": "high",
                "pid": r["pid"],
                "tid": r["tid"],
                "ts_ns": r["ts_ns"],
                "address": r["address"],
                "message": f"free of {r['address']:#x}, {offset} bytes inside the live "
                f"{r['a_size']}-byte block at {r['block_address']:#x} (allocated at "
                f"ts_ns {r['a_ts']})",
                "stack": stack_info(con, r["pid"], r["stack_id"]),
                "related_allocations": [_alloc(con, r)],
                "remediation": "Pass the pointer the allocator returned, not one into the block "
                "(check pointer arithmetic before the free).",
            }
        )
    return _total(con, "interior_frees"), out, _total(con, "interior_unchecked") == 0


def oversized(con: duckdb.DuckDBPyConnection, threshold: int) -> tuple[int, list[dict[str, Any]]]:
    """Single blocks of at least ``threshold`` bytes."""
    found = rows(
        con,
        """SELECT pid, tid, ts_ns, address, size, domain, stack_id,
                  CASE WHEN free_ts_ns >= 0 THEN free_ts_ns END AS free_ts_ns
        FROM state_oversized WHERE size >= ? ORDER BY size DESC, ts_ns, pid, address""",
        [threshold],
    )
    out = []
    for r in found[:MAX_FINDINGS_PER_KIND]:
        out.append(
            drop_none(
                {
                    "kind": "oversized_allocation",
                    "severity": "medium",
                    "pid": r["pid"],
                    "tid": r["tid"],
                    "ts_ns": r["ts_ns"],
                    "address": r["address"],
                    "size": r["size"],
                    "threshold_bytes": threshold,
                    "message": f"one {DOMAIN_NAMES.get(r['domain'], r['domain'])}-domain block of "
                    f"{r['size']} bytes (threshold {threshold})",
                    "stack": stack_info(con, r["pid"], r["stack_id"]),
                    "related_allocations": [
                        drop_none(
                            {
                                "role": "allocation",
                                "ts_ns": r["ts_ns"],
                                "address": r["address"],
                                "size": r["size"],
                                "free_ts_ns": r["free_ts_ns"],
                            }
                        )
                    ],
                    "remediation": (
                        "Stream or chunk the data, or use a memory-mapped file, instead of "
                        "one buffer this large."
                    ),
                }
            )
        )
    return _total(con, "oversized"), out


def _unprovable(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return rows(
        con,
        """SELECT pid, unmatched_frees, reused AS unrecorded_frees FROM state_processes
        WHERE unmatched_frees > 0 OR reused > 0 ORDER BY pid""",
    )


def run(con: duckdb.DuckDBPyConnection, options: AnalyzerOptions) -> dict[str, Any]:
    """Build the security report and write it; returns the report.

    ``summary`` counts every finding (``by_kind``, ``by_severity``, ``total_violations``)
    before each kind is cut to :data:`MAX_FINDINGS_PER_KIND` in ``violation_reports``;
    ``truncated`` says whether any was cut and ``kept_violations`` how many are listed.
    """
    n_double, doubles, unprovable_doubles = double_frees(con)
    n_mismatch, mismatches = domain_mismatches(con)
    leak_findings, retained, leak_counts = leaks(con, options.leak_checkpoints)
    n_big, big = oversized(con, options.oversized_bytes)
    n_interior, interior, interior_checked = interior_frees(con)
    findings = doubles + mismatches + leak_findings + big + interior
    findings.sort(
        key=lambda f: (
            _SEVERITY_ORDER[f["severity"]],
            f["kind"],
            f.get("ts_ns") or 0,
            f["pid"],
            f.get("address") or 0,
            -f.get("alive_bytes", 0),
            f["stack"]["stack_id"],
        )
    )
    by_kind = {
        "double_free": n_double,
        "domain_mismatch": n_mismatch,
        "leak": sum(leak_counts.values()),
        "oversized_allocation": n_big,
        "invalid_free": n_interior,
    }
    by_severity = dict(leak_counts)
    for severity, n in (
        ("critical", n_double),
        ("high", n_mismatch + n_interior),
        ("medium", n_big),
    ):
        if n:
            by_severity[severity] = by_severity.get(severity, 0) + n
    total = sum(by_kind.values())
    report: dict[str, Any] = {
        "metadata": metadata(
            con, FILE_KIND, options, "Findings the allocator events prove, with stacks and remedies"
        ),
        "summary": {
            "total_violations": total,
            "by_kind": by_kind,
            "truncated": len(findings) < total,
            "kept_violations": len(findings),
            "max_findings_per_kind": MAX_FINDINGS_PER_KIND,
            "invalid_free_checked": interior_checked,
            "by_severity": dict(sorted(by_severity.items(), key=lambda kv: _SEVERITY_ORDER[kv[0]])),
            "thresholds": {
                "oversized_bytes": options.oversized_bytes,
                "leak_checkpoints": max(2, options.leak_checkpoints),
            },
            "retained_at_exit": retained,
            "unprovable_double_free_patterns": unprovable_doubles,
            "unprovable": _unprovable(con),
        },
        "violation_reports": findings,
    }
    write_report(report, options, FILE_KIND)
    return report
