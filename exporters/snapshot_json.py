"""``memory_snapshot.json``: the seed's hierarchical snapshot, from the memory analysis.

``memory_hierarchy`` maps category -> ``subcategories`` -> subcategory -> ``types`` (each with
its size, allocation count, share and the tracked variables of that type as ``allocations``),
with a ``summary`` at every level; plus a top-level ``summary`` of the headline numbers and a
``metadata`` block. Only measured values appear: a number the analysis lacks is left out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, BinaryIO

from memscope.exporters import extract
from memscope.exporters.report_files import Reports, report

FORMAT_VERSION = "1.0"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


def _allocations(variables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for v in variables:
        row: dict[str, Any] = {"variable_name": v["name"], "type_name": v["type_name"]}
        if v["size"] is not None:
            row["size_bytes"] = v["size"]
        if v["deep_size"] is not None:
            row["deep_size_bytes"] = v["deep_size"]
        if v["created_ts_ns"] is not None:
            row["allocation_time_ns"] = v["created_ts_ns"]
        if v["died_ts_ns"] is not None:
            row["deallocation_time_ns"] = v["died_ts_ns"]
        row["scope"] = v["scope"]
        if v["pid"]:
            row["pid"] = v["pid"]
        out.append(row)
    return out


def _hierarchy(types: list[dict[str, Any]], variables: list[dict[str, Any]]) -> dict[str, Any]:
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in variables:
        by_type[v["type_name"]].append(v)
    total = sum(t["bytes"] for t in types)
    tree: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for t in types:
        tree[t["category"]][t["subcategory"]].append(t)
    out: dict[str, Any] = {}
    for cat, subs in sorted(tree.items(), key=lambda kv: kv[0]):
        cat_total = sum(t["bytes"] for ts in subs.values() for t in ts)
        cat_out: dict[str, Any] = {
            "subcategories": {},
            "summary": {
                "total_size_bytes": cat_total,
                "subcategory_count": len(subs),
                "percentage_of_total": _pct(cat_total, total),
            },
        }
        for sub, ts in sorted(subs.items(), key=lambda kv: kv[0]):
            sub_total = sum(t["bytes"] for t in ts)
            rows = []
            for t in sorted(ts, key=lambda t: -t["bytes"]):
                tracked = by_type.get(t["type_name"], [])
                row: dict[str, Any] = {
                    "type_name": t["type_name"],
                    "size_bytes": t["bytes"],
                    "percentage_of_subcategory": _pct(t["bytes"], sub_total),
                    "percentage_of_total": _pct(t["bytes"], total),
                    "variable_names": t["variables"] or [v["name"] for v in tracked],
                    "allocations": _allocations(tracked),
                }
                if t["count"] is not None:
                    row["allocation_count"] = t["count"]
                if t["deep_bytes"] is not None:
                    row["deep_size_bytes"] = t["deep_bytes"]
                rows.append(row)
            cat_out["subcategories"][sub] = {
                "types": rows,
                "summary": {
                    "total_size_bytes": sub_total,
                    "type_count": len(ts),
                    "percentage_of_category": _pct(sub_total, cat_total),
                    "percentage_of_total": _pct(sub_total, total),
                },
            }
        out[cat] = cat_out
    return out


class MemorySnapshotJson:
    """Exporter of ``memory_snapshot.json``."""

    name = "memory snapshot JSON"
    filename = "memory_snapshot.json"

    def build(self, reports: Reports) -> dict[str, Any]:
        """The snapshot as a JSON-ready dict."""
        mem, life = report(reports, "memory_analysis"), report(reports, "lifetime")
        t0 = extract.run_start(reports)
        stats = extract.stats(mem)
        summary_keys = {
            "active_allocations": "active_allocations",
            "active_memory_bytes": "active_memory",
            "peak_memory_bytes": "peak_memory",
            "total_allocations": "total_allocations",
            "total_deallocations": "total_deallocations",
            "total_memory_bytes": "total_allocated",
            "total_freed_bytes": "total_freed",
        }
        summary = {k: stats[v] for k, v in summary_keys.items() if stats.get(v) is not None}
        source = extract.pick(mem, "metadata", default={})
        metadata: dict[str, Any] = {
            "description": "Hierarchical memory analysis with categories and subcategories",
            "format_version": FORMAT_VERSION,
            "timestamp": datetime.now(UTC).isoformat(),
            "source": {
                k: source[k]
                for k in (
                    "source_log_id",
                    "generated_at",
                    "format_version",
                    "analyzer",
                    "processes",
                )
                if isinstance(source, dict) and k in source
            },
        }
        problems = {
            k: v
            for k, v in extract.problem_messages(reports).items()
            if k in ("memory_analysis", "lifetime")
        }
        if problems:
            metadata["problems"] = problems
        return {
            "memory_hierarchy": _hierarchy(extract.types(mem), extract.variables(mem, life, t0)),
            "summary": summary,
            "metadata": metadata,
        }

    def render(self, obj: dict[str, Any], fileobj: BinaryIO) -> None:
        """Write indented UTF-8 JSON."""
        from memscope.exporters.dashboard_html import finite

        text = json.dumps(finite(obj), indent=2, ensure_ascii=False, allow_nan=False)
        fileobj.write(text.encode("utf-8"))
        fileobj.write(b"\n")
