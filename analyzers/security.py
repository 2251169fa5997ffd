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
    live bytes keep growing. The process's time span is cut at ``leak_checkpoints`` equal
    steps; at each checkpoint the site's live bytes are measured. ``confidence`` is
    ``high`` when they never shrink and grow at half the steps or more, ``medium`` when they
    grow more often than they shrink (at least two growing steps either way: one late block
    is not growth); ``growth_ratio`` = growing steps / steps. Sites alive at
    exit that do not grow are summarized as ``retained_at_exit`` (not findings).
``invalid_free`` (high)
    a free of an address strictly inside a block of the same domain that is alive at that
    moment (two live blocks never overlap, so the pointer is not one the allocator returned).
    Checked when the log holds at most ``MAX_INTERIOR_CHECKS`` unmatched frees
    (``summary.invalid_free_checked`` says whether it was).
``oversized_allocation`` (medium)
    one block of at least ``oversized_bytes``.

``summary`` also counts what the log cannot prove wrong: frees of blocks it never saw
allocated (allocated before tracing, or by an untraced thread) and addresses reused with no
recorded free.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from memscope.analyzers._common import (
    STACK_JOIN,
    AnalyzerOptions,
    drop_none,
    metadata,
    rows,
    stack_info,
    write_report,
)
from memscope.analyzers.views import _READERS
from memscope.producer.wire import DOMAIN_NAMES, DOMAIN_NATIVE, KIND_FREE, KIND_NAMES

KIND = "security"
FILE_KIND = "security_violations"

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
#: Findings of one kind kept in the file (the summary counts all of them).
MAX_FINDINGS_PER_KIND = 1000

_NOT_SAMPLED = "pid NOT IN (SELECT pid FROM processes WHERE mode = 'sampled')"


#: Joins a finding relation ``f`` (pid, address, ``rel_ts``) to the allocation it relates to.
_RELATED = """LEFT JOIN (SELECT pid, address, ts_ns, size, domain, stack_id, tid FROM _allocations
                      WHERE (pid, address) IN (SELECT pid, address FROM f)
                      QUALIFY row_number() OVER (PARTITION BY pid, address, ts_ns
                                                 ORDER BY seq) = 1) a
    ON a.pid = f.pid AND a.address = f.address AND a.ts_ns = f.rel_ts"""


def _alloc(con: duckdb.DuckDBPyConnection, r: dict[str, Any]) -> dict:
    if r["a_ts"] is None:
        return {}
    return {"role": "allocation", "ts_ns": r["a_ts"], "address": r["address"],
            "size": r["a_size"], "domain": DOMAIN_NAMES.get(r["a_domain"], str(r["a_domain"])),
            "tid": r["a_tid"], "stack": stack_info(con, r["pid"], r["a_stack"])}


def _with_allocation(
    con: duckdb.DuckDBPyConnection, finding_sql: str, where: str = "TRUE",
) -> list[dict[str, Any]]:
    """Rows of ``finding_sql`` (with pid, address, rel_ts) joined to their allocation.

    ``where`` filters the joined rows (``f`` the finding, ``a`` its allocation).
    """
    return rows(
        con,
        f"""WITH f AS ({finding_sql})
        SELECT f.*, a.ts_ns AS a_ts, a.size AS a_size, a.domain AS a_domain,
               a.stack_id AS a_stack, a.tid AS a_tid
        FROM f {_RELATED} WHERE {where} ORDER BY f.ts_ns, f.pid, f.seq""",
    )


_REPEATED_ENDS = f"""SELECT pid, tid, seq, ts_ns, address, kind, domain, stack_id,
           previous_end_ts_ns, first_alloc_ts_ns AS rel_ts
    FROM _notable_ends WHERE repeated_end AND {_NOT_SAMPLED}"""


#: A repeated native free is proven when native mode's shim, which knows every live heap
#: block of the process, blocked a double free of that address (an ``ffi`` finding row).
_BLOCKED_BY_SHIM = f"""(f.domain = {DOMAIN_NATIVE} AND (f.pid, f.address) IN (
    SELECT pid, CAST(('0x' || lower(ltrim(json_extract_string(details, '$.address'), '0x')))
                     AS UBIGINT)
    FROM ffi WHERE event = 'native.double_free'))"""


def _first_frees(con: duckdb.DuckDBPyConnection,
                 found: list[dict[str, Any]]) -> dict[tuple[int, int, int], tuple[int, ...]]:
    """(pid, address, ts_ns) of each double free's first free -> (tid, stack id, domain).

    The tracer records the stack of RAW- and MEM-domain frees (``producer/tr_record.h``).
    The matched block state keeps no stack of a block's end, so the first frees are looked up
    in the memory events: ``raw_memory`` when the connection holds it, else one pass over
    the log's memory batches (only when there is a double free to report).
    """
    wanted = {(int(r["pid"]), int(r["address"]), int(r["previous_end_ts_ns"])) for r in found}
    out: dict[tuple[int, int, int], tuple[int, ...]] = {}
    for p, a, t, tid, stack, domain in con.execute(
        f"""WITH f AS ({_REPEATED_ENDS})
        SELECT f.pid, f.address, f.previous_end_ts_ns, max(e.tid), max(e.stack_id),
            max(e.domain)
        FROM f JOIN raw_memory e ON e.pid = f.pid AND e.address = f.address
            AND e.ts_ns = f.previous_end_ts_ns AND e.kind = {KIND_FREE}
        GROUP BY ALL ORDER BY ALL"""
    ).fetchall():
        out[(int(p), int(a), int(t))] = (int(tid), int(stack), int(domain))
    reader = _READERS.get(con)
    if wanted <= out.keys() or reader is None:
        return out
    from memscope.analyzers.blocks import memory_batches

    addresses = pa.array(sorted({a for _, a, _ in wanted}), pa.uint64())
    for batch in memory_batches(reader):
        hits = batch.filter(pc.and_(pc.equal(batch["kind"], KIND_FREE),
                                    pc.is_in(batch["address"], addresses)))
        columns = ["pid", "address", "ts_ns", "tid", "stack_id", "domain"]
        for row in hits.select(columns).to_pylist():
            key = (int(row["pid"]), int(row["address"]), int(row["ts_ns"]))
            if key in wanted:
                out[key] = (int(row["tid"]), int(row["stack_id"]), int(row["domain"]))
    return out


def _first_key(r: dict[str, Any]) -> tuple[int, int, int]:
    return (int(r["pid"]), int(r["address"]), int(r["previous_end_ts_ns"]))


def double_frees(con: duckdb.DuckDBPyConnection) -> tuple[int, list[dict[str, Any]], int]:
    """Provable second frees of an already freed block.

    Returns (count, findings, unprovable patterns): a repeated free counts as a double free
    only when it has a Python stack and runs on the thread that allocated the block, or when
    native mode's shim blocked it (it knows every live heap block); the other repeated frees
    (which an untraced allocation in between would explain) are only counted.
    """
    found = _with_allocation(
        con, _REPEATED_ENDS, f"(f.stack_id <> 0 AND a.tid = f.tid) OR {_BLOCKED_BY_SHIM}"
    )
    patterns = int(con.execute(f"SELECT count(*) FROM ({_REPEATED_ENDS})").fetchall()[0][0])
    # the first free on the same thread too: then the three events' order is that thread's
    # own (frees on other threads are ordered by clocks, which may disagree by a little)
    first = _first_frees(con, found) if found else {}
    # ... and the same kind of block freed twice the same way: allocation and both frees in
    # one domain (a free in another domain after an object's free is an allocation the
    # tracer did not see in between, not a double free)
    found = [r for r in found if r["domain"] == DOMAIN_NATIVE or (
        first.get(_first_key(r), (None,))[0] == r["tid"]
        and first[_first_key(r)][2] == r["domain"] == r["a_domain"])]
    out = []
    for r in found[:MAX_FINDINGS_PER_KIND]:
        alloc = _alloc(con, r)
        out.append({
            "kind": "double_free", "severity": "critical", "confidence": "high",
            "pid": r["pid"], "tid": r["tid"], "ts_ns": r["ts_ns"], "address": r["address"],
            "message": (f"{KIND_NAMES.get(r['kind'], r['kind'])} of address {r['address']:#x} "
                        f"already freed at ts_ns {r['previous_end_ts_ns']}"
                        + (f"; allocated at ts_ns {alloc['ts_ns']} ({alloc['size']} bytes)"
                           if alloc else "")
                        + "; no allocation of that address in between on any traced thread"),
            "stack": stack_info(con, r["pid"], r["stack_id"]),
            "related_allocations": ([alloc] if alloc else []) + [
                {"role": "first_free", "ts_ns": r["previous_end_ts_ns"], "address": r["address"],
                 "stack": stack_info(con, r["pid"], first.get(_first_key(r), (0, 0))[1])}
            ],
            "remediation": "Free each block once: clear the pointer after freeing it, and check "
                           "which owner (C extension, ctypes/cffi code) releases it.",
        })
    return len(found), out, patterns - len(found)


def domain_mismatches(con: duckdb.DuckDBPyConnection) -> tuple[int, list[dict[str, Any]]]:
    """Blocks released through another allocator domain than they came from."""
    found = _with_allocation(
        con,
        """SELECT pid, tid, seq, ts_ns, address, kind, domain, alloc_domain,
                  alloc_ts_ns AS rel_ts, stack_id
        FROM _notable_ends WHERE matched AND alloc_domain <> domain""",
    )
    out = []
    for r in found[:MAX_FINDINGS_PER_KIND]:
        alloc = _alloc(con, r)
        came, went = (DOMAIN_NAMES.get(r["alloc_domain"], str(r["alloc_domain"])),
                      DOMAIN_NAMES.get(r["domain"], str(r["domain"])))
        out.append({
            "kind": "domain_mismatch", "severity": "high", "pid": r["pid"], "tid": r["tid"],
            "ts_ns": r["ts_ns"], "address": r["address"],
            "allocated_domain": came, "freed_domain": went,
            "message": f"block {r['address']:#x} allocated in the {came} domain was released "
                       f"by a {went}-domain {KIND_NAMES.get(r['kind'], r['kind'])}",
            "stack": stack_info(con, r["pid"], r["stack_id"]),
            "related_allocations": [alloc] if alloc else [],
            "remediation": "Release memory with the free function of the family that allocated "
                           "it (PyMem_Free for PyMem_Malloc, PyObject_Free for PyObject_Malloc, "
                           "PyMem_RawFree for PyMem_RawMalloc).",
        })
    return len(found), out


def _growth(series: list[int]) -> tuple[int, int]:
    grows = sum(1 for a, b in zip(series, series[1:], strict=False) if b > a)
    shrinks = sum(1 for a, b in zip(series, series[1:], strict=False) if b < a)
    return grows, shrinks


def leak_sites(
    con: duckdb.DuckDBPyConnection, checkpoints: int
) -> list[dict[str, Any]]:
    """Every site with blocks alive at the end, with its live bytes at each checkpoint."""
    k = max(2, int(checkpoints))
    columns = ",\n".join(
        f"coalesce(sum(a.size) FILTER (WHERE a.ts_ns <= c.t{i} AND "
        f"(a.end_ts_ns IS NULL OR a.end_ts_ns > c.t{i})), 0) AS live{i}"
        for i in range(1, k + 1)
    )
    times = ", ".join(f"lo + (hi - lo) * {i} // {k} AS t{i}" for i in range(1, k + 1))
    return rows(
        con,
        f"""WITH span AS (
            SELECT a.pid, min(a.ts_ns) AS lo,
                   greatest(max(coalesce(a.end_ts_ns, a.ts_ns)), max(p.end_ts_ns)) AS hi
            FROM _allocations a LEFT JOIN processes p ON p.pid = a.pid GROUP BY a.pid),
        c AS (SELECT pid, {times} FROM span),
        live AS (SELECT pid, stack_id, count(*) AS blocks, sum(size) AS bytes
                 FROM _allocations WHERE end_ts_ns IS NULL GROUP BY pid, stack_id),
        x AS (SELECT a.pid, a.stack_id, {columns}
              FROM _allocations a JOIN c ON c.pid = a.pid
              WHERE (a.pid, a.stack_id) IN (SELECT pid, stack_id FROM live)
              GROUP BY a.pid, a.stack_id)
        SELECT x.*, live.blocks, live.bytes, p.end_ts_ns IS NOT NULL AS process_exited,
               s.location
        FROM x JOIN live ON live.pid = x.pid AND live.stack_id = x.stack_id
        LEFT JOIN processes p ON p.pid = x.pid
        {STACK_JOIN}
        ORDER BY live.bytes DESC, x.pid, x.stack_id""",
    )


def leaks(
    con: duckdb.DuckDBPyConnection, checkpoints: int
) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, int]]:
    """Leak findings, the totals of the sites alive at exit that do not grow, and counts.

    Only the first :data:`MAX_FINDINGS_PER_KIND` findings are built; the counts (by
    severity) cover every leaking site.
    """
    k = max(2, int(checkpoints))
    out: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    retained = {"sites": 0, "blocks": 0, "bytes": 0}
    sites = leak_sites(con, k)
    samples = _samples_live(con)
    for site in sites:
        series = [int(site[f"live{i}"]) for i in range(1, k + 1)]
        grows, shrinks = _growth(series)
        if grows >= 2 and shrinks == 0 and grows * 2 >= k - 1:
            confidence = "high"
        elif grows >= 2 and grows > shrinks:
            confidence = "medium"
        else:
            retained["sites"] += 1
            retained["blocks"] += site["blocks"]
            retained["bytes"] += site["bytes"]
            continue
        severity = "high" if confidence == "high" else "medium"
        counts[severity] = counts.get(severity, 0) + 1
        if len(out) >= MAX_FINDINGS_PER_KIND:
            continue
        where = "at exit" if site["process_exited"] else "at the end of the log"
        out.append({
            "kind": "leak", "severity": severity,
            "pid": site["pid"], "confidence": confidence,
            "growth_ratio": round(grows / (k - 1), 3),
            "alive_blocks": site["blocks"], "alive_bytes": site["bytes"],
            "process_exited": site["process_exited"],
            "live_bytes_at_checkpoints": series,
            "message": f"{site['blocks']} blocks ({site['bytes']} bytes) from "
                       f"{site['location'] or 'stack ' + str(site['stack_id'])} alive {where}; "
                       f"live bytes grew at {grows} of {k - 1} checkpoints and shrank at "
                       f"{shrinks}",
            "stack": stack_info(con, site["pid"], site["stack_id"]),
            "related_allocations": samples.get((site["pid"], site["stack_id"]), []),
            "remediation": "Find who keeps these objects reachable (caches, module globals, "
                           "growing lists or dicts) and bound or clear it.",
        })
    return out, retained, counts


def _samples_live(con: duckdb.DuckDBPyConnection) -> dict[tuple[int, int], list[dict]]:
    """Per (pid, stack): its five largest blocks alive at the end."""
    out: dict[tuple[int, int], list[dict]] = {}
    for r in rows(
        con,
        """SELECT pid, stack_id, ts_ns, address, size FROM _allocations WHERE end_ts_ns IS NULL
        QUALIFY row_number() OVER (PARTITION BY pid, stack_id
                                   ORDER BY size DESC, ts_ns, address) <= 5
        ORDER BY pid, stack_id, size DESC, ts_ns, address""",
    ):
        out.setdefault((r.pop("pid"), r.pop("stack_id")), []).append({"role": "alive", **r})
    return out


#: Unmatched frees checked for pointing inside a live block; beyond this many the check is
#: skipped (and reported as not done).
MAX_INTERIOR_CHECKS = 1_000_000


def interior_frees(con: duckdb.DuckDBPyConnection) -> tuple[int, list[dict[str, Any]], bool]:
    """Frees of an address strictly inside a block of the same domain alive at that moment.

    Only frees of addresses the log never saw allocated are checked (a repeated free is a
    double free instead).

    A plain range join of the frees against every block costs frees x blocks comparisons
    (minutes on a few million events). Instead, an ASOF join pairs each block with the
    nearest freed address above its start -- one sort of each side -- which keeps only the
    blocks that contain some freed address (few); the exact check joins those.

    Returns (count, findings, checked): ``checked`` is False when the log holds more than
    :data:`MAX_INTERIOR_CHECKS` unmatched frees and the check was skipped.
    """
    unmatched = con.execute(
        f"SELECT count(*) FROM _notable_ends WHERE NOT matched AND NOT repeated_end "
        f"AND kind = {KIND_FREE}"
    ).fetchall()[0][0]
    if not unmatched:
        return 0, [], True
    if unmatched > MAX_INTERIOR_CHECKS:
        return 0, [], False
    found = rows(
        con,
        f"""WITH f AS (SELECT pid, tid, seq, ts_ns, address, domain, stack_id
                       FROM _notable_ends
                       WHERE NOT matched AND NOT repeated_end AND kind = {KIND_FREE}),
        -- (pid, domain) and address folded into one ordered key, so the ASOF join needs
        -- no equality condition
        keys AS (SELECT pid, domain, row_number() OVER (ORDER BY pid, domain) AS k
                 FROM (SELECT DISTINCT pid, domain FROM f)),
        freed AS (SELECT DISTINCT (k::HUGEINT << 64) + address AS v
                  FROM f JOIN keys USING (pid, domain)),
        blocks AS (SELECT (k::HUGEINT << 64) + a.address AS v, a.pid, a.address, a.size,
                          a.ts_ns, a.end_ts_ns, a.domain, a.stack_id, a.tid
                   FROM _allocations a JOIN keys USING (pid, domain)),
        holding AS (SELECT blocks.* FROM blocks ASOF JOIN freed ON freed.v > blocks.v
                    WHERE freed.v < blocks.v + blocks.size)
        SELECT f.pid, f.tid, f.seq, f.ts_ns, f.address, f.domain, f.stack_id,
               a.address AS block, a.size AS block_size, a.ts_ns AS block_ts,
               a.stack_id AS block_stack, a.tid AS block_tid
        FROM f JOIN holding a ON a.pid = f.pid AND a.domain = f.domain
          AND f.address > a.address AND f.address < a.address + a.size
        WHERE a.ts_ns < f.ts_ns AND (a.end_ts_ns IS NULL OR a.end_ts_ns > f.ts_ns)
        ORDER BY f.ts_ns, f.pid, f.seq""",
    )
    out = []
    for r in found[:MAX_FINDINGS_PER_KIND]:
        offset = r["address"] - r["block"]
        out.append({
            "kind": "invalid_free", "severity": "high", "pid": r["pid"], "tid": r["tid"],
            "ts_ns": r["ts_ns"], "address": r["address"],
            "message": f"free of {r['address']:#x}, {offset} bytes inside the live "
                       f"{r['block_size']}-byte block at {r['block']:#x} (allocated at ts_ns "
                       f"{r['block_ts']})",
            "stack": stack_info(con, r["pid"], r["stack_id"]),
            "related_allocations": [{
                "role": "allocation", "ts_ns": r["block_ts"], "address": r["block"],
                "size": r["block_size"], "tid": r["block_tid"],
                "domain": DOMAIN_NAMES.get(r["domain"], str(r["domain"])),
                "stack": stack_info(con, r["pid"], r["block_stack"]),
            }],
            "remediation": "Pass the pointer the allocator returned, not one into the block "
                           "(check pointer arithmetic before the free).",
        })
    return len(found), out, True


def oversized(
    con: duckdb.DuckDBPyConnection, threshold: int
) -> tuple[int, list[dict[str, Any]]]:
    """Single blocks of at least ``threshold`` bytes."""
    found = rows(
        con,
        """SELECT pid, tid, ts_ns, address, size, domain, stack_id, free_ts_ns
        FROM _allocations WHERE size >= ? ORDER BY size DESC, ts_ns, pid, address""",
        [threshold],
    )
    out = []
    for r in found[:MAX_FINDINGS_PER_KIND]:
        out.append(drop_none({
            "kind": "oversized_allocation", "severity": "medium", "pid": r["pid"],
            "tid": r["tid"], "ts_ns": r["ts_ns"], "address": r["address"], "size": r["size"],
            "threshold_bytes": threshold,
            "message": f"one {DOMAIN_NAMES.get(r['domain'], r['domain'])}-domain block of "
                       f"{r['size']} bytes (threshold {threshold})",
            "stack": stack_info(con, r["pid"], r["stack_id"]),
            "related_allocations": [drop_none({"role": "allocation", "ts_ns": r["ts_ns"],
                                               "address": r["address"], "size": r["size"],
                                               "free_ts_ns": r["free_ts_ns"]})],
            "remediation": "Stream or chunk the data, or use a memory-mapped file, instead of "
                           "one buffer this large.",
        }))
    return len(found), out


def _unprovable(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return rows(
        con,
        """WITH u AS (SELECT pid, count(*) AS n FROM _notable_ends WHERE NOT matched
                      GROUP BY pid),
        r AS (SELECT pid, count(*) AS n FROM _allocations WHERE reused_ts_ns IS NOT NULL
              GROUP BY pid)
        SELECT coalesce(u.pid, r.pid) AS pid, coalesce(u.n, 0) AS unmatched_frees,
               coalesce(r.n, 0) AS unrecorded_frees
        FROM u FULL OUTER JOIN r ON u.pid = r.pid ORDER BY pid""",
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
    findings.sort(key=lambda f: (_SEVERITY_ORDER[f["severity"]], f["kind"],
                                 f.get("ts_ns") or 0, f["pid"], f.get("address") or 0,
                                 -f.get("alive_bytes", 0), f["stack"]["stack_id"]))
    by_kind = {"double_free": n_double, "domain_mismatch": n_mismatch,
               "leak": sum(leak_counts.values()), "oversized_allocation": n_big,
               "invalid_free": n_interior}
    by_severity = dict(leak_counts)
    for severity, n in (("critical", n_double), ("high", n_mismatch + n_interior),
                        ("medium", n_big)):
        if n:
            by_severity[severity] = by_severity.get(severity, 0) + n
    total = sum(by_kind.values())
    report: dict[str, Any] = {
        "metadata": metadata(con, FILE_KIND, options,
                             "Findings the allocator events prove, with stacks and remedies"),
        "summary": {
            "total_violations": total,
            "by_kind": by_kind,
            "truncated": len(findings) < total,
            "kept_violations": len(findings),
            "max_findings_per_kind": MAX_FINDINGS_PER_KIND,
            "invalid_free_checked": interior_checked,
            "by_severity": dict(sorted(by_severity.items(),
                                       key=lambda kv: _SEVERITY_ORDER[kv[0]])),
            "thresholds": {"oversized_bytes": options.oversized_bytes,
                           "leak_checkpoints": max(2, options.leak_checkpoints)},
            "retained_at_exit": retained,
            "unprovable_double_free_patterns": unprovable_doubles,
            "unprovable": _unprovable(con),
        },
        "violation_reports": findings,
    }
    write_report(report, options, FILE_KIND)
    return report
