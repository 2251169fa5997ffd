"""The memscope-rs read API the Tracker offers, computed from a log (in a helper process).

* :func:`seed_figures`: ``MemoryStats``' ``peak_allocations`` (blocks alive at the peak of
  memory, from the analysis state's per-site counts at that moment) and ``leaked_allocations``
  / ``leaked_memory`` (blocks still allocated when the process's trace ended: its ``exit``
  row; ``None`` while it is still traced, when no leak is known yet).
* :func:`active_allocations`: the blocks alive at the end of the log (the ``live`` view),
  with the name and type of a tracked variable whose object a block is.
* :func:`allocation_history`: every block allocated (the ``allocations`` view), ended or not.

Rows carry ``location``: the innermost Python frame of the allocation
(``function (file:line)``), or None when the block was allocated with no Python frame.
"""

from __future__ import annotations

from typing import Any

from memscope.analyzers.stacks import resolver


def seed_figures(con: Any, pid: int) -> dict[str, Any]:
    """``peak_allocations``, ``leaked_allocations``, ``leaked_memory`` of process ``pid``."""
    (peak_blocks,) = con.execute(
        "SELECT coalesce(sum(blocks), 0)::BIGINT FROM peak_sites WHERE pid = ?", [int(pid)]
    ).fetchone()
    ended = con.execute(
        "SELECT end_ts_ns IS NOT NULL FROM processes WHERE pid = ?", [int(pid)]
    ).fetchone()
    leaked: dict[str, Any] = {"leaked_allocations": None, "leaked_memory": None}
    if ended is not None and ended[0]:
        blocks, size = con.execute(
            "SELECT coalesce(sum(live_blocks), 0)::BIGINT, coalesce(sum(live_bytes), 0)::BIGINT "
            "FROM sites WHERE pid = ?",
            [int(pid)],
        ).fetchone()
        leaked = {"leaked_allocations": int(blocks), "leaked_memory": int(size)}
    return {"peak_allocations": int(peak_blocks), **leaked}


def _located(con: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stacks = resolver(con)
    for row in rows:
        row["location"] = stacks.location(int(row["pid"]), int(row["stack_id"]))
    return rows


def _rows(con: Any, sql: str, params: Any) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def active_allocations(con: Any, pid: int) -> list[dict[str, Any]]:
    """The blocks of process ``pid`` alive at the end of the log, in allocation order.

    A block that is a tracked variable's object (``track_var``, still alive) carries its
    ``var_name`` and ``type_name`` (the latest name when it was tracked more than once).
    """
    return _located(
        con,
        _rows(
            con,
            """SELECT l.pid, l.tid, l.ts_ns, l.address, l.size, l.domain, l.stack_id,
                v.name AS var_name, v.type_name
            FROM live l LEFT JOIN (
                SELECT pid, address, name, type_name FROM variables
                WHERE pid = $pid AND died_ts_ns IS NULL
                QUALIFY row_number() OVER (PARTITION BY pid, address
                                           ORDER BY created_ts_ns DESC, name) = 1
            ) v ON v.pid = l.pid AND v.address = l.address AND v.address <> 0
            WHERE l.pid = $pid ORDER BY l.ts_ns, l.seq""",
            {"pid": int(pid)},
        ),
    )


def allocation_history(con: Any, pid: int) -> list[dict[str, Any]]:
    """Every block process ``pid`` allocated, with ``free_ts_ns`` (None while alive)."""
    return _located(
        con,
        _rows(
            con,
            "SELECT pid, tid, ts_ns, address, size, domain, stack_id, free_ts_ns, end_kind "
            "FROM allocations WHERE pid = ? ORDER BY ts_ns, seq",
            [int(pid)],
        ),
    )
