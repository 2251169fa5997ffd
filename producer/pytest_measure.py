"""Per-test memory figures for the pytest plugin, measured from the events in the log.

Used by :mod:`memscope.producer.pytest_plugin` in a helper process (``python -m
memscope.producer.pytest_measure LOG PID T0 T1 FILENAME FUNCTION``), so that DuckDB and
pyarrow are never imported, and their work never traced, inside the test process. The answer
is one JSON object on stdout (:func:`measure`).

Definitions, for the blocks of process ``PID`` allocated during the test, i.e. whose
allocation time is in ``[T0, T1]`` (CLOCK_MONOTONIC nanoseconds), in any thread and any
allocator domain:

* ``peak_bytes``: the highest total of those blocks alive at once during the test (frees of
  blocks allocated before the test are not counted; memray's ``limit_memory`` measures the
  same way). ``peak_sites``: what was alive at that moment, by allocation site.
* ``leaked_bytes``: those blocks still alive at ``T1`` whose Python stack, when allocated,
  includes the test function itself (``FILENAME`` and ``FUNCTION``, the code object's
  ``co_filename`` and ``co_qualname``): memory the test's own code allocated and did not
  give back, including through functions it called. ``leak_sites``: the same, by site.

A site is the innermost frame of the allocation's stack (``file:line function``); blocks
allocated with no Python frame are grouped under ``<no Python frame>``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: Allocation sites listed in a failure message.
TOP_SITES = 5

_SITE = """coalesce(s.filename || ':' || s.lineno || ' ' || s.function, '<no Python frame>')"""

_BLOCKS = """
    SELECT ts_ns, free_ts_ns, size::BIGINT AS size, stack_id
    FROM allocations WHERE pid = $pid AND ts_ns BETWEEN $t0 AND $t1"""


def _sites(con: Any, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = con.execute(
        f"""WITH b AS ({_BLOCKS})
        SELECT {_SITE} AS site, sum(b.size)::BIGINT AS bytes, count(*) AS blocks
        FROM b LEFT JOIN stacks s ON s.pid = $pid AND s.stack_id = b.stack_id
        WHERE {where}
        GROUP BY site ORDER BY bytes DESC, site LIMIT {TOP_SITES}""",
        params,
    ).fetchall()
    return [{"site": str(site), "bytes": int(n), "blocks": int(c)} for site, n, c in rows]


def peak(con: Any, pid: int, t0: int, t1: int) -> tuple[int, int | None]:
    """``(peak_bytes, when)`` of the blocks allocated during ``[t0, t1]``."""
    row = con.execute(
        f"""WITH b AS ({_BLOCKS}),
        d AS (SELECT ts_ns AS t, 1 AS starts, size AS delta FROM b
              UNION ALL
              SELECT free_ts_ns, 0, -size FROM b WHERE free_ts_ns <= $t1),
        r AS (SELECT t, sum(delta) OVER (ORDER BY t, starts ROWS UNBOUNDED PRECEDING) AS level
              FROM d)
        SELECT level, t FROM r ORDER BY level DESC, t LIMIT 1""",
        {"pid": pid, "t0": t0, "t1": t1},
    ).fetchone()
    if row is None or row[0] is None or int(row[0]) <= 0:
        return 0, None
    return int(row[0]), int(row[1])


def measure(con: Any, pid: int, t0: int, t1: int, filename: str, function: str) -> dict[str, Any]:
    """The test's peak and leaks (see the module docstring) from a views connection."""
    params = {"pid": pid, "t0": t0, "t1": t1}
    peak_bytes, peak_ts = peak(con, pid, t0, t1)
    peak_sites: list[dict[str, Any]] = []
    if peak_ts is not None:
        peak_sites = _sites(
            con, "b.ts_ns <= $at AND (b.free_ts_ns IS NULL OR b.free_ts_ns > $at)",
            {**params, "at": peak_ts},
        )
    own = """(b.free_ts_ns IS NULL OR b.free_ts_ns > $t1) AND b.stack_id IN (
        SELECT stack_id FROM frames WHERE pid = $pid AND filename = $file AND function = $func)"""
    leak_params = {**params, "file": filename, "func": function}
    row = con.execute(
        f"WITH b AS ({_BLOCKS}) SELECT coalesce(sum(size), 0)::BIGINT, count(*) FROM b "
        f"WHERE {own}",
        leak_params,
    ).fetchone()
    leaked, leaked_blocks = (int(row[0]), int(row[1])) if row else (0, 0)
    return {
        "peak_bytes": peak_bytes,
        "peak_ts_ns": peak_ts,
        "peak_sites": peak_sites,
        "leaked_bytes": leaked,
        "leaked_blocks": leaked_blocks,
        "leak_sites": _sites(con, own, leak_params) if leaked else [],
    }


def main(argv: list[str] | None = None) -> int:
    """Answer one request (see the module docstring) as JSON on stdout."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 6:
        print("usage: python -m memscope.producer.pytest_measure LOG PID T0 T1 FILENAME "
              f"FUNCTION (got {len(args)} arguments)", file=sys.stderr)
        return 2
    log, pid, t0, t1, filename, function = args
    from memscope.analyzers.views import connect

    try:
        con = connect(log, raw_memory=False, matched=True)  # reads allocations only
        answer = measure(con, int(pid), int(t0), int(t1), filename, function)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
