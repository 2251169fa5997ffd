"""One tolerant read of the six analysis files into the plain view every exporter draws.

The analyzers own the file formats (``analyzers/schemas``); this module is the only place that
knows their field names, so a renamed field is fixed here once. Anything absent stays absent
(``None`` or an empty list): the exporters print "not measured", never a made-up value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from memscope.exporters._format import human_bytes
from memscope.exporters._reports import Reports, problems, report

#: The eight headline metrics of the seed, in display order: (key, label, unit).
METRICS: tuple[tuple[str, str, str], ...] = (
    ("active_memory", "Active memory", "bytes"),
    ("peak_memory", "Peak memory", "bytes"),
    ("active_allocations", "Active allocations", "count"),
    ("memory_efficiency", "Efficiency", "fraction"),
    ("median_allocation_size", "Median size", "bytes"),
    ("p95_allocation_size", "P95 size", "bytes"),
    ("fragmentation", "Fragmentation", "fraction"),
    ("allocation_density", "Allocation density", "rate"),
)

_ALIASES: dict[str, tuple[str, ...]] = {
    "active_memory": ("active_memory", "active_memory_bytes", "active_bytes"),
    "peak_memory": ("peak_memory", "peak_memory_bytes", "peak_bytes"),
    "active_allocations": ("active_allocations", "active_count"),
    "total_allocations": ("total_allocations", "allocation_count"),
    "total_deallocations": ("total_deallocations", "free_count", "total_frees"),
    "total_allocated": ("total_allocated", "total_allocated_bytes", "total_bytes"),
    "memory_efficiency": ("memory_efficiency", "efficiency"),
    "median_allocation_size": ("median_allocation_size", "median_size", "median_size_bytes"),
    "p95_allocation_size": ("p95_allocation_size", "p95_size", "p95_size_bytes"),
    "fragmentation": ("fragmentation", "fragmentation_ratio"),
    "allocation_density": ("allocation_density", "allocations_per_second"),
}


def pick(obj: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` present (and not None) in the mapping ``obj``."""
    if not isinstance(obj, Mapping):
        return default
    for name in names:
        value = obj.get(name)
        if value is not None:
            return value
    return default


def _num(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean_text(value: Any) -> str:
    """A traced value as text that XML and UTF-8 can carry (bad code points -> U+FFFD)."""
    return "" if value is None else _NOT_XML.sub("\ufffd", str(value))


def rows_of(value: Any) -> list[dict[str, Any]]:
    """The mapping rows of a JSON list (or of a mapping's values); anything else -> []."""
    if isinstance(value, Mapping):
        value = list(value.values()) if all(isinstance(v, Mapping) for v in value.values()) else []
    if not isinstance(value, list):
        return []
    return [dict(v) for v in value if isinstance(v, Mapping)]


def stats(mem: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers (the eight metrics and the totals), ``None`` where not measured."""
    src = pick(mem, "memory_stats", "stats", "summary", default={})
    out = {key: _num(pick(src, *names)) for key, names in _ALIASES.items()}
    return out


def memory_over_time(mem: Mapping[str, Any], t0: int) -> list[dict[str, Any]]:
    """Active memory per process over time: ``[{pid, t_s, bytes}]`` sorted by process, time."""
    rows = rows_of(pick(mem, "memory_over_time", "memory_timeline", "timeline"))
    out = []
    for r in rows:
        ts = _num(pick(r, "ts_ns", "timestamp_ns"))
        value = _num(pick(r, "active_memory", "active_bytes", "bytes"))
        if ts is None or value is None:
            continue
        out.append({"pid": clean_text(pick(r, "pid", default="all")), "t_s": (ts - t0) / 1e9,
                    "bytes": value})
    out.sort(key=lambda r: (r["pid"], r["t_s"]))
    return out


def types(mem: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Leaf rows of the type hierarchy, largest first.

    Each row is ``{category, subcategory, type_name, bytes, count, variables}``, read from
    ``type_categories`` (a list, or a mapping by category name as in the seed).
    """
    cats = pick(mem, "type_categories", "memory_hierarchy", "categories")
    out: list[dict[str, Any]] = []
    cat_items: Iterable[tuple[str, Any]]
    if isinstance(cats, Mapping):
        cat_items = ((str(k), v) for k, v in cats.items())
    else:
        cat_items = ((clean_text(pick(c, "category", "name")), c) for c in rows_of(cats))
    for cat_name, cat in cat_items:
        subs = pick(cat, "subcategories", default=[])
        sub_items: Iterable[tuple[str, Any]]
        if isinstance(subs, Mapping):
            sub_items = ((str(k), v) for k, v in subs.items())
        else:
            sub_items = ((clean_text(pick(s, "name", "subcategory")), s) for s in rows_of(subs))
        for sub_name, sub in sub_items:
            for t in rows_of(pick(sub, "types", default=[])):
                size = _num(pick(t, "total_size", "size_bytes", "bytes"))
                if size is None:
                    continue
                names = pick(t, "variables", "variable_names", default=[])
                out.append({
                    "category": cat_name or "Other",
                    "subcategory": sub_name or "other",
                    "type_name": clean_text(pick(t, "type_name", "name")),
                    "bytes": size,
                    "count": _num(pick(t, "allocation_count", "count")),
                    "variables": ([clean_text(n) for n in names[:50]]
                                  if isinstance(names, list) else []),
                })
    out.sort(key=lambda r: -r["bytes"])
    return out


def variables(mem: Mapping[str, Any], life: Mapping[str, Any], t0: int) -> list[dict[str, Any]]:
    """Tracked variables with their lifetimes; the lifetime file wins where both have them."""
    rows = rows_of(pick(life, "variables", "lifetimes")) or rows_of(
        pick(mem, "tracked_variables", "variables", "allocations"))
    category_of = {}
    for r in rows_of(pick(mem, "tracked_variables", "variables")):
        key = (clean_text(pick(r, "name", "var_name", "variable_name")), r.get("address"))
        category_of[key] = clean_text(pick(r, "category"))
    out = []
    for r in rows:
        name = clean_text(pick(r, "name", "var_name", "variable_name"))
        created = _num(pick(r, "created_ts_ns", "birth_ts_ns", "allocated_at_ns"))
        died = _num(pick(r, "died_ts_ns", "death_ts_ns", "freed_at_ns"))
        lifetime = _num(pick(r, "lifetime_ns"))
        if lifetime is None and created is not None and died is not None:
            lifetime = died - created
        out.append({
            "name": name,
            "type_name": clean_text(pick(r, "type_name", "type")),
            "category": clean_text(pick(r, "category")) or category_of.get(
                (name, r.get("address")), ""),
            "size": _num(pick(r, "size", "shallow_size", "size_bytes")),
            "deep_size": _num(pick(r, "deep_size")),
            "scope": clean_text(pick(r, "scope", "scope_name", default="<global>")),
            "pid": clean_text(pick(r, "pid")),
            "tid": clean_text(pick(r, "tid")),
            "created_ts_ns": created,
            "died_ts_ns": died,
            "created_s": None if created is None else (created - t0) / 1e9,
            "died_s": None if died is None else (died - t0) / 1e9,
            "lifetime_ns": lifetime,
        })
    return out


def distribution(mem: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Allocation size buckets: ``[{label, min, max, count, bytes}]``."""
    out = []
    for r in rows_of(pick(mem, "allocation_distribution", "size_distribution")):
        lo, hi = _num(pick(r, "min_size", "min")), _num(pick(r, "max_size", "max"))
        count = _num(pick(r, "count"))
        if count is None:
            continue
        label = clean_text(pick(r, "label", "bucket"))
        if not label and lo is not None:
            label = (f"≥ {human_bytes(lo)}" if hi is None or hi >= 1 << 50
                     else f"{human_bytes(lo)} – {human_bytes(hi)}")
        out.append({"label": label, "min": lo, "max": hi, "count": count,
                    "bytes": _num(pick(r, "total_size", "bytes"))})
    return out


def sites(report_: Mapping[str, Any], *names: str) -> list[dict[str, Any]]:
    """Allocation sites ``[{function, filename, lineno, count, bytes}]`` by bytes, largest first."""
    out = []
    for r in rows_of(pick(report_, *names)):
        frame = r.get("frame") if isinstance(r.get("frame"), Mapping) else r
        out.append({
            "function": clean_text(pick(frame, "function", "func")),
            "filename": clean_text(pick(frame, "filename", "file")),
            "lineno": _num(pick(frame, "lineno", "line")),
            "count": _num(pick(r, "count", "allocations", "allocation_count")),
            "bytes": _num(pick(r, "total_size", "bytes", "size")),
        })
    out.sort(key=lambda s: -float(s["bytes"] or 0))
    return out


def run_start(reports: Reports) -> int:
    """The run's first timestamp (ns) that the reports know of; 0 when none is given."""
    life, mem = report(reports, "lifetime"), report(reports, "memory_analysis")
    start = _num(pick(life, "start_ts_ns"))
    if start is not None:
        return int(start)
    candidates = [_num(pick(r, "ts_ns")) for r in rows_of(pick(mem, "memory_over_time"))]
    candidates += [_num(pick(r, "created_ts_ns")) for r in rows_of(pick(life, "variables"))]
    known = [c for c in candidates if c is not None]
    return int(min(known)) if known else 0


def scopes(life: Mapping[str, Any], t0: int) -> list[dict[str, Any]]:
    """Per-scope totals ``[{scope, pid, variable_count, total_size, start_s, end_s}]``."""
    out = []
    for r in rows_of(pick(life, "scope_analysis", "scopes")):
        start, end = _num(pick(r, "start_ts_ns")), _num(pick(r, "end_ts_ns"))
        out.append({
            "scope": clean_text(pick(r, "scope", "name")), "pid": clean_text(pick(r, "pid")),
            "variable_count": _num(pick(r, "variable_count")),
            "total_size": _num(pick(r, "total_size")),
            "start_s": None if start is None else (start - t0) / 1e9,
            "end_s": None if end is None else (end - t0) / 1e9,
        })
    return out


def links(life: Mapping[str, Any]) -> list[dict[str, str]]:
    """Alias and containment links between tracked variable names: ``[{kind, a, b}]``."""
    out = []
    for r in rows_of(pick(life, "aliases", "alias_relationships")):
        names = [clean_text(n) for n in pick(r, "names", default=[]) if n is not None]
        out += [{"kind": "alias", "a": names[0], "b": n} for n in names[1:]]
    for r in rows_of(pick(life, "containment", "containment_relationships")):
        out.append({"kind": "contains", "a": clean_text(pick(r, "container", "parent")),
                    "b": clean_text(pick(r, "contained", "child"))})
    return out


def processes(reports: Reports) -> list[dict[str, Any]]:
    """Processes covered, from the first report whose metadata lists them."""
    for kind in reports:
        procs = rows_of(pick(pick(report(reports, kind), "metadata"), "processes"))
        if procs:
            return [{"pid": clean_text(pick(p, "pid")), "ppid": clean_text(pick(p, "ppid")),
                     "argv": " ".join(clean_text(a) for a in pick(p, "argv", default=[])
                                      if a is not None)
                     if isinstance(pick(p, "argv"), list) else clean_text(pick(p, "argv"))}
                    for p in procs]
    return []


def problem_messages(reports: Reports) -> dict[str, str]:
    """Kind -> message for each unusable file."""
    return {k: p.message for k, p in problems(reports).items()}
