"""The lifecycle analyzer: ``<base>_lifetime.json``.

Per tracked variable: birth (when ``track_var`` recorded it), death (the allocator's first
free of the object's block after that -- see the ``variables`` view), lifetime, scope, thread
and process. Per scope: variable counts, sizes, and the scope's own duration when it was a
``memscope.scope`` with enter/exit events. Aliases: one object (same pid, ``id()`` and block,
and the same death) tracked under several names. Containment: the tracked objects reachable
from another tracked object when it was tracked (recorded by the producer in ``contains``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import duckdb

from memscope.analyzers.common import AnalyzerOptions, drop_none, metadata, one, rows, write_report

KIND = "lifecycle"
FILE_KIND = "lifetime"


def lifecycle_events(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every tracked variable with its measured birth and death events."""
    found = rows(
        con,
        """SELECT v.var_id, v.pid, v.tid, t.name AS thread_name, v.name, v.type_name, v.scope,
                  v.scope_id, v.size, v.deep_size, v.created_ts_ns, v.died_ts_ns,
                  v.lifetime_ns, v.alive_at_end
        FROM variables v LEFT JOIN threads t ON t.pid = v.pid AND t.tid = v.tid
        ORDER BY v.created_ts_ns, v.pid, v.var_id""",
    )
    out = []
    for v in found:
        events = [{"event": "tracked", "ts_ns": v["created_ts_ns"]}]
        if v["died_ts_ns"] is not None:
            events.append({"event": "freed", "ts_ns": v["died_ts_ns"]})
        out.append({**drop_none(v), "events": events})
    return out


def scope_analysis(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Per scope instance and per scope name: variables, sizes, durations."""
    instances = [
        drop_none(r)
        for r in rows(
            con,
            """WITH v AS (
            SELECT pid, scope_id, scope, count(*) AS variable_count,
                   sum(size) AS total_size_bytes, sum(deep_size) AS total_deep_size_bytes,
                   count(*) FILTER (WHERE alive_at_end) AS alive_at_end,
                   min(created_ts_ns) AS first_tracked_ts_ns
            FROM variables GROUP BY pid, scope_id, scope)
        SELECT v.pid, v.scope_id, v.scope AS name, s.tid, s.parent_id, s.enter_ts_ns,
               s.exit_ts_ns, s.exit_ts_ns - s.enter_ts_ns AS duration_ns,
               v.variable_count, v.total_size_bytes, v.total_deep_size_bytes, v.alive_at_end,
               v.first_tracked_ts_ns
        FROM v LEFT JOIN scopes s ON s.pid = v.pid AND s.scope_id = v.scope_id
                                 AND v.scope_id <> 0
        ORDER BY v.first_tracked_ts_ns, v.pid, v.scope_id, v.scope""",
        )
    ]
    totals = [
        drop_none(r)
        for r in rows(
            con,
            """WITH d AS (SELECT name, count(*) AS occurrences, sum(exit_ts_ns - enter_ts_ns)
                          AS total_duration_ns
                      FROM scopes WHERE exit_ts_ns IS NOT NULL GROUP BY name),
        v AS (SELECT scope AS name, count(*) AS variable_count,
                     sum(size) AS total_size_bytes, sum(deep_size) AS total_deep_size_bytes,
                     median(lifetime_ns) AS median_lifetime_ns,
                     count(*) FILTER (WHERE alive_at_end) AS alive_at_end
              FROM variables GROUP BY scope)
        SELECT coalesce(v.name, d.name) AS name, d.occurrences, d.total_duration_ns,
               coalesce(v.variable_count, 0) AS variable_count,
               coalesce(v.total_size_bytes, 0) AS total_size_bytes,
               coalesce(v.total_deep_size_bytes, 0) AS total_deep_size_bytes,
               v.median_lifetime_ns, coalesce(v.alive_at_end, 0) AS alive_at_end
        FROM v FULL OUTER JOIN d ON v.name = d.name
        ORDER BY total_size_bytes DESC, name""",
        )
    ]
    return {"scopes": instances, "scope_totals": totals}


def aliases(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Objects tracked under more than one name while the same block was alive."""
    return [
        drop_none(r)
        for r in rows(
            con,
            """SELECT pid, object_id, address, any_value(type_name ORDER BY var_id) AS type_name,
                  list(DISTINCT name ORDER BY name) AS names,
                  list(var_id ORDER BY var_id) AS var_ids,
                  min(created_ts_ns) AS first_tracked_ts_ns, died_ts_ns
        FROM variables GROUP BY pid, object_id, address, died_ts_ns
        HAVING count(DISTINCT name) > 1
        ORDER BY first_tracked_ts_ns, pid, object_id""",
        )
    ]


def containment(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """(container, contained) pairs of tracked variables."""
    return rows(
        con,
        """WITH c AS (SELECT pid, var_id, name, unnest(contains) AS inner_id FROM variables)
        SELECT c.pid, c.var_id AS container_var_id, c.name AS container_name,
               v.var_id AS contained_var_id, v.name AS contained_name,
               v.type_name AS contained_type
        FROM c JOIN variables v ON v.pid = c.pid AND v.var_id = c.inner_id
        ORDER BY c.pid, c.var_id, v.var_id""",
    )


def summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Counts and lifetime percentiles over all tracked variables."""
    return drop_none(
        one(
            con,
            """SELECT count(*) AS tracked_variables,
                  count(died_ts_ns) AS died, count(*) FILTER (WHERE alive_at_end) AS alive_at_end,
                  min(lifetime_ns) AS min_lifetime_ns, median(lifetime_ns) AS median_lifetime_ns,
                  max(lifetime_ns) AS max_lifetime_ns
        FROM variables""",
        )
    )


def _by_thread(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: dict[tuple[int, int], dict[str, Any]] = defaultdict(lambda: {"variables": 0})
    for e in events:
        entry = counts[(e["pid"], e["tid"])]
        entry["variables"] += 1
        if "thread_name" in e:
            entry["thread_name"] = e["thread_name"]
    return [{"pid": p, "tid": t, **counts[(p, t)]} for p, t in sorted(counts)]


def run(con: duckdb.DuckDBPyConnection, options: AnalyzerOptions) -> dict[str, Any]:
    """Build the lifetime report and write it; returns the report."""
    events = lifecycle_events(con)
    report: dict[str, Any] = {
        "metadata": metadata(
            con, FILE_KIND, options, "Tracked variables' lifetimes, scopes, aliases and containment"
        ),
        "summary": summary(con),
        "lifecycle_events": events,
        "scope_analysis": scope_analysis(con),
        "aliases": aliases(con),
        "containment": containment(con),
        "variables_by_thread": _by_thread(events),
    }
    write_report(report, options, FILE_KIND)
    return report
