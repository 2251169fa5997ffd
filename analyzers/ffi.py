"""The FFI analyzer: ``<base>_unsafe_ffi.json``.

* ``native_allocations``: blocks by source -- the allocator domains outside Python's object
  heap (``raw``, ``numpy``, ``native``, ``mmap``) and, whatever their domain, blocks allocated
  with a ``ctypes`` or ``cffi`` frame on the stack.
* ``boundary_events``: the FFI events the producer recorded (CPython audit events such as
  ``ctypes.dlopen``, ``ctypes.dlsym``, ``ctypes.call_function``, ``ctypes.cdata``), counted by
  event, plus the first events in time order with their details; ``libraries`` lists what
  ``ctypes.dlopen`` loaded.
* ``native_leaks``: sites whose native-domain blocks are alive at the end of the log; in
  native mode each names the ``library`` that called malloc, its ``native_caller`` symbol and
  the ``python_site`` (innermost Python frame) of the allocation.
* ``native_findings``: frees that memscope's allocator shim blocked (native mode): double
  frees, frees and reallocs of addresses malloc never returned, with their sites.
* ``ctypes_calls``: ``ctypes.call_function`` call sites, each with the native blocks
  allocated under it (see :mod:`memscope.analyzers.native_frames`).
* ``risks``: what the events show -- raw memory reads/writes through addresses
  (``ctypes.string_at``, ``ctypes.cdata`` from an address, ``ctypes.PyObj_FromPtr``), native
  blocks freed through another domain, native blocks alive at exit -- each with its counts.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import numpy as np

from memscope.analyzers import native_frames
from memscope.analyzers.common import (
    AnalyzerOptions,
    drop_none,
    metadata,
    one,
    rows,
    write_report,
)
from memscope.analyzers.fold import DOMAIN_MISMATCH
from memscope.analyzers.stacks import add_locations, resolver
from memscope.protocol.wire import (
    DOMAIN_MMAP,
    DOMAIN_NAMES,
    DOMAIN_NATIVE,
    DOMAIN_NUMPY,
    DOMAIN_RAW,
)

KIND = "ffi"
FILE_KIND = "unsafe_ffi"

NATIVE_DOMAINS = (DOMAIN_RAW, DOMAIN_NUMPY, DOMAIN_NATIVE, DOMAIN_MMAP)
#: Boundary events listed one by one (the per-event counts cover all of them).
MAX_EVENTS = 200

#: Event name prefix -> (risk kind, severity, what it means).
RISKY_EVENTS: tuple[tuple[str, str, str, str], ...] = (
    (
        "ctypes.PyObj_FromPtr",
        "object_from_address",
        "high",
        "a Python object was made from a raw address; a wrong address crashes the interpreter",
    ),
    (
        "ctypes.cdata",
        "memory_from_address",
        "medium",
        "ctypes data was mapped onto a raw address or buffer; nothing checks its bounds",
    ),
    (
        "ctypes.string_at",
        "raw_memory_read",
        "medium",
        "bytes were read from a raw address; nothing checks that the memory is valid",
    ),
    (
        "ctypes.wstring_at",
        "raw_memory_read",
        "medium",
        "a string was read from a raw address; nothing checks that the memory is valid",
    ),
    (
        "ctypes.call_function",
        "foreign_call",
        "low",
        "foreign functions were called; their argument types are not checked by Python",
    ),
    ("ctypes.dlopen", "library_load", "info", "native libraries were loaded into the process"),
    # native mode (memscope run --native): frees the allocator shim blocked
    (
        "native.double_free",
        "native_double_free",
        "high",
        "a native block was freed twice (the second free was blocked by memscope's shim)",
    ),
    (
        "native.invalid_free",
        "native_invalid_free",
        "high",
        "an address malloc never returned was freed (blocked by memscope's shim)",
    ),
    (
        "native.invalid_realloc",
        "native_invalid_realloc",
        "high",
        "an address malloc never returned (or already freed) was passed to realloc (blocked)",
    ),
)

_NATIVE_LIST = ", ".join(str(d) for d in NATIVE_DOMAINS)


def _is_ctypes_frame(frame: tuple[str, str, int]) -> bool:
    function, filename, _ = frame
    return "/ctypes/" in filename or "cffi" in filename or function.startswith("cffi")


def native_allocations(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Blocks, bytes and live blocks per native source."""
    domains = rows(
        con,
        f"""SELECT domain, sum(allocations) AS blocks, sum(bytes_allocated) AS bytes,
                   sum(live_blocks) AS live_blocks, sum(live_bytes) AS live_bytes
        FROM state_sites WHERE domain IN ({_NATIVE_LIST})
        GROUP BY domain ORDER BY domain""",
    )
    out = [{"source": DOMAIN_NAMES.get(d.pop("domain"), "unknown"), **d} for d in domains]
    stacks = resolver(con)
    if not stacks.any_frame(_is_ctypes_frame):
        return out  # no ctypes/cffi frame at all: no site to look at
    sites = con.execute(
        """SELECT pid, stack_id, sum(allocations)::BIGINT AS blocks,
                  sum(bytes_allocated)::BIGINT AS bytes, sum(live_blocks)::BIGINT AS live_blocks,
                  sum(live_bytes)::BIGINT AS live_bytes
        FROM state_sites GROUP BY pid, stack_id ORDER BY pid, stack_id"""
    ).fetchnumpy()
    keys = list(zip(sites["pid"].tolist(), sites["stack_id"].tolist(), strict=True))
    ctypes_stacks = stacks.matching(_is_ctypes_frame, keys)
    hit = np.fromiter(((int(p), int(n)) in ctypes_stacks for p, n in keys), bool, len(keys))
    totals = {
        key: int(np.asarray(sites[key])[hit].sum()) if len(keys) else 0
        for key in ("blocks", "bytes", "live_blocks", "live_bytes")
    }
    if totals["blocks"]:
        out.append({"source": "ctypes/cffi", **totals})
    return out


def _details(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def boundary_events(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """FFI events: counts per event name, the first events, the libraries loaded."""
    counts = rows(
        con,
        """SELECT event, count(*) AS count, min(ts_ns) AS first_ts_ns, max(ts_ns) AS last_ts_ns,
                  list(DISTINCT pid ORDER BY pid) AS pids
        FROM ffi GROUP BY event ORDER BY count DESC, event""",
    )
    events = rows(
        con,
        """SELECT pid, tid, ts_ns, event, details, stack_id
        FROM ffi ORDER BY ts_ns, pid, tid, event, details LIMIT ?""",
        [MAX_EVENTS],
    )
    add_locations(con, events)
    for e in events:
        e["details"] = _details(e["details"])
    libraries = sorted(
        {
            str(d.get("name"))
            for d in (
                _details(r["details"])
                for r in rows(
                    con, "SELECT details FROM ffi WHERE event = 'ctypes.dlopen' ORDER BY ts_ns"
                )
            )
            if isinstance(d, dict) and d.get("name") is not None
        }
    )
    return {"by_event": counts, "events": [drop_none(e) for e in events], "libraries": libraries}


def native_leaks(con: duckdb.DuckDBPyConnection, top_n: int) -> list[dict[str, Any]]:
    """Sites with native-domain blocks alive at the end of the log."""
    found = rows(
        con,
        f"""SELECT pid, stack_id, domain_code AS domain, count(*) AS blocks,
                   sum(size) AS bytes, min(ts_ns) AS first_ts_ns
        FROM live WHERE domain_code IN ({_NATIVE_LIST})
        GROUP BY pid, stack_id, domain_code
        ORDER BY bytes DESC, blocks DESC, pid, stack_id, domain LIMIT ?""",
        [top_n],
    )
    add_locations(con, found, trace=True)
    for f in found:
        f["domain"] = DOMAIN_NAMES.get(f["domain"], "unknown")
    native_frames.add_sites(con, found)  # native mode: library and Python call site
    return [drop_none(f) for f in found]


def risks(con: duckdb.DuckDBPyConnection, leaks: list[dict[str, Any]]) -> list[dict]:
    """Risks the events show, with their counts."""
    out: list[dict[str, Any]] = []
    for prefix, kind, severity, meaning in RISKY_EVENTS:
        found = one(
            con,
            """SELECT count(*) AS count, min(ts_ns) AS first_ts_ns,
                      list(DISTINCT pid ORDER BY pid) AS pids
            FROM ffi WHERE event = ? OR starts_with(event, ?)""",
            [prefix, prefix + "/"],
        )
        if found["count"]:
            out.append(
                {
                    "kind": kind,
                    "severity": severity,
                    "event": prefix,
                    "count": found["count"],
                    "first_ts_ns": found["first_ts_ns"],
                    "pids": found["pids"],
                    "message": f"{found['count']} x {prefix}: {meaning}",
                }
            )
    native = _NATIVE_LIST
    mismatch = one(
        con,
        f"""SELECT count(*) AS count FROM state_findings
        WHERE type = {DOMAIN_MISMATCH}
          AND (alloc_domain IN ({native}) OR domain IN ({native}))""",
    )
    if mismatch["count"]:
        out.append(
            {
                "kind": "native_domain_mismatch",
                "severity": "high",
                "count": mismatch["count"],
                "message": f"{mismatch['count']} native blocks were released through "
                f"another allocator than the one that made them",
            }
        )
    if leaks:
        total = one(
            con,
            f"""SELECT count(*) AS blocks, coalesce(sum(size), 0) AS bytes FROM live
            WHERE domain_code IN ({native})""",
        )
        out.append(
            {
                "kind": "native_alive_at_end",
                "severity": "medium",
                "count": total["blocks"],
                "bytes": total["bytes"],
                "message": f"{total['blocks']} native blocks ({total['bytes']} bytes) "
                f"were never freed",
            }
        )
    order = {"high": 0, "medium": 1, "low": 2, "info": 3}
    out.sort(key=lambda r: (order[r["severity"]], r["kind"], r.get("event", "")))
    return out


def run(con: duckdb.DuckDBPyConnection, options: AnalyzerOptions) -> dict[str, Any]:
    """Build the FFI report and write it; returns the report."""
    leaks = native_leaks(con, options.top_n)
    boundary = boundary_events(con)
    sources = native_allocations(con)
    report: dict[str, Any] = {
        "metadata": metadata(
            con,
            FILE_KIND,
            options,
            "Native allocations, FFI boundary events, native leaks and risks",
        ),
        "summary": {
            "native_blocks": sum(s["blocks"] for s in sources if s["source"] != "ctypes/cffi"),
            "native_bytes": sum(s["bytes"] for s in sources if s["source"] != "ctypes/cffi"),
            "boundary_events": sum(e["count"] for e in boundary["by_event"]),
            "libraries_loaded": len(boundary["libraries"]),
        },
        "native_allocations": sources,
        "boundary_events": boundary,
        "native_leaks": leaks,
        "native_findings": native_frames.findings(con),
        "ctypes_calls": native_frames.ctypes_calls(con),
        "risks": risks(con, leaks),
    }
    write_report(report, options, FILE_KIND)
    return report
