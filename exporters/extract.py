"""One read of the six analysis files into the plain rows every exporter draws.

The analyzers own the formats (``analyzers/schemas/*.schema.json``); this module is the only
place that knows their field names. Anything absent stays absent (``None`` or an empty list):
the exporters then print "not measured", never a made-up value. Traced strings pass through
:func:`clean_text`, which keeps them as they are except for code points XML cannot carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from memscope.exporters.formatting import human_bytes
from memscope.exporters.report_files import Reports, problems, report

#: The eight headline metrics of the seed, in display order: (key, label, unit, note).
#: Units: bytes, count, percent (0-100 as the analyzers write it), ratio.
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("active_memory", "Active memory", "bytes", "live at the end"),
    ("peak_memory", "Peak memory", "bytes", "highest live total"),
    ("active_allocations", "Active allocations", "count", "blocks live at the end"),
    ("memory_efficiency", "Efficiency", "percent", "active / peak"),
    ("median_allocation_size", "Median size", "bytes", "per allocation"),
    ("p95_allocation_size", "P95 size", "bytes", "95% of allocations ≤"),
    ("fragmentation", "Fragmentation", "percent", "(peak − active) / peak"),
    ("allocation_density", "Allocation density", "ratio", "allocations per tracked variable"),
)

_STAT_KEYS = (
    "active_memory",
    "peak_memory",
    "active_allocations",
    "total_allocations",
    "total_allocated",
    "total_deallocations",
    "total_freed",
    "unmatched_frees",
    "unrecorded_frees",
    "folded_allocations",
    "folded_bytes",
    "tracked_variables",
    "peak_ts_ns",
    "memory_efficiency",
    "fragmentation",
    "median_allocation_size",
    "p95_allocation_size",
    "allocation_density",
)

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LOCATION = re.compile(r"^(?P<function>.*) \((?P<where>[^()]*)\)$")


def pick(obj: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` present (and not None) in the mapping ``obj``."""
    if not isinstance(obj, Mapping):
        return default
    for name in names:
        value = obj.get(name)
        if value is not None:
            return value
    return default


def num(value: Any) -> float | int | None:
    """A finite JSON number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def clean_text(value: Any) -> str:
    """A traced value as text that XML and UTF-8 can carry (bad code points -> U+FFFD)."""
    return "" if value is None else _NOT_XML.sub("\ufffd", str(value))


def text_list(value: Any, limit: int | None = None) -> list[str]:
    """The items of a JSON list as clean text; anything else -> []."""
    if not isinstance(value, list):
        return []
    return [clean_text(v) for v in value[:limit]]


def rows_of(value: Any) -> list[dict[str, Any]]:
    """The mapping rows of a JSON list; anything else -> []."""
    if not isinstance(value, list):
        return []
    return [dict(v) for v in value if isinstance(v, Mapping)]


def stats(mem: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers, ``None`` where not measured."""
    src = pick(mem, "memory_stats", default={})
    return {key: num(pick(src, key)) for key in _STAT_KEYS}


def memory_over_time(mem: Mapping[str, Any], t0: int) -> list[dict[str, Any]]:
    """Live bytes per process over time: ``[{pid, t_s, bytes}]`` by process, then time."""
    out = []
    for series in rows_of(pick(mem, "memory_over_time")):
        pid = clean_text(pick(series, "pid", default="all"))
        for p in rows_of(pick(series, "points")):
            ts, value = num(pick(p, "ts_ns")), num(pick(p, "live_bytes"))
            if ts is not None and value is not None:
                out.append({"pid": pid, "t_s": (ts - t0) / 1e9, "bytes": value})
    out.sort(key=lambda r: (r["pid"], r["t_s"]))
    return out


def process_peaks(mem: Mapping[str, Any], t0: int) -> list[dict[str, Any]]:
    """Each process's measured peak: ``[{pid, t_s, bytes}]`` (``memory_stats`` of the process).

    These are the exact maxima of live bytes the analyzer found (``peak_memory`` reached at
    ``peak_ts_ns``), not the highest bucket-end sample of ``memory_over_time``. With no
    per-process records, the run's own peak stands for its single series.
    """
    out = []
    for p in rows_of(pick(mem, "processes")):
        s = pick(p, "memory_stats", default={})
        ts, peak = num(pick(s, "peak_ts_ns")), num(pick(s, "peak_memory"))
        if ts is not None and peak is not None:
            out.append({"pid": clean_text(pick(p, "pid")), "t_s": (ts - t0) / 1e9, "bytes": peak})
    series = rows_of(pick(mem, "memory_over_time"))
    whole = pick(mem, "memory_stats", default={})
    ts, peak = num(pick(whole, "peak_ts_ns")), num(pick(whole, "peak_memory"))
    if not out and len(series) == 1 and ts is not None and peak is not None:
        out.append(
            {
                "pid": clean_text(pick(series[0], "pid", default="all")),
                "t_s": (ts - t0) / 1e9,
                "bytes": peak,
            }
        )
    return out


def types(mem: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Leaf rows of ``memory_hierarchy``, largest first.

    Each row is ``{category, subcategory, type_name, bytes, deep_bytes, count, variables}``.
    """
    out: list[dict[str, Any]] = []
    hierarchy = pick(mem, "memory_hierarchy", default={})
    if not isinstance(hierarchy, Mapping):
        return out
    for cat, node in hierarchy.items():
        subs = pick(node, "subcategories", default={})
        if not isinstance(subs, Mapping):
            continue
        for sub, sub_node in subs.items():
            for t in rows_of(pick(sub_node, "types")):
                size = num(pick(t, "size_bytes"))
                if size is None:
                    continue
                names = pick(t, "variable_names", default=[])
                out.append(
                    {
                        "category": clean_text(cat) or "Other",
                        "subcategory": clean_text(sub),
                        "type_name": clean_text(pick(t, "type_name")),
                        "bytes": size,
                        "deep_bytes": num(pick(t, "deep_size_bytes")),
                        "count": num(pick(t, "allocation_count")),
                        "variables": (
                            [clean_text(n) for n in names[:50]] if isinstance(names, list) else []
                        ),
                    }
                )
    out.sort(key=lambda r: -r["bytes"])
    return out


def largest_variables_first(
    types_: list[dict[str, Any]], variables_: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``types_`` with each type's variable names ordered by size, largest first."""
    size_of: dict[tuple[str, str], float] = {}
    for v in variables_:
        key = (v["type_name"], v["name"])
        size_of[key] = max(size_of.get(key, 0), v["size"] or 0)
    out = []
    for t in types_:
        type_name = t["type_name"]

        def size(name: str, type_name: str = type_name) -> float:
            return -size_of.get((type_name, name), 0)

        out.append(dict(t, variables=sorted(t["variables"], key=size)))
    return out


def _var_key(row: Mapping[str, Any]) -> str:
    return f"{pick(row, 'pid', default='')}:{pick(row, 'var_id', default=pick(row, 'name'))}"


def variables(mem: Mapping[str, Any], life: Mapping[str, Any], t0: int) -> list[dict[str, Any]]:
    """Tracked variables with lifetimes; the lifetime file first, categories from memory."""
    tracked = rows_of(pick(mem, "tracked_variables"))
    by_key = {_var_key(r): r for r in tracked}
    rows = rows_of(pick(life, "lifecycle_events")) or tracked
    out = []
    for r in rows:
        key = _var_key(r)
        extra = by_key.get(key, {})
        created = num(pick(r, "created_ts_ns"))
        died = num(pick(r, "died_ts_ns"))
        lifetime = num(pick(r, "lifetime_ns"))
        if lifetime is None and created is not None and died is not None:
            lifetime = died - created
        out.append(
            {
                "key": key,
                "name": clean_text(pick(r, "name")),
                "type_name": clean_text(pick(r, "type_name", default=pick(extra, "type_name"))),
                "category": clean_text(pick(r, "category", default=pick(extra, "category"))),
                "size": num(pick(r, "size", default=pick(extra, "size"))),
                "deep_size": num(pick(r, "deep_size", default=pick(extra, "deep_size"))),
                "scope": clean_text(pick(r, "scope", default="<module>")),
                "pid": clean_text(pick(r, "pid")),
                "tid": clean_text(pick(r, "thread_name", "tid")),
                "created_ts_ns": created,
                "died_ts_ns": died,
                "created_s": None if created is None else (created - t0) / 1e9,
                "died_s": None if died is None else (died - t0) / 1e9,
                "lifetime_ns": lifetime,
            }
        )
    return out


def distribution(perf: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Allocation size buckets: ``[{label, min, max, count, bytes}]``."""
    out = []
    for r in rows_of(pick(perf, "allocation_distribution")):
        lo, hi, count = num(pick(r, "min_bytes")), num(pick(r, "max_bytes")), num(pick(r, "count"))
        if count is None:
            continue
        span = (
            ""
            if lo is None
            else f"≥ {human_bytes(lo)}"
            if hi is None
            else f"{human_bytes(lo)}–{human_bytes(hi)}"
        )
        name = clean_text(pick(r, "bucket"))
        label = f"{name} ({span})" if name and span else name or span
        out.append(
            {"label": label, "min": lo, "max": hi, "count": count, "bytes": num(pick(r, "bytes"))}
        )
    return out


def split_location(location: str) -> tuple[str, str]:
    """``"parse (app.py:30)"`` -> ``("parse", "app.py:30")``."""
    match = _LOCATION.match(location)
    return (match["function"], match["where"]) if match else (location, "")


#: How an allocation made with no Python frame on the stack (stack id 0) is named.
NO_FRAME = "<no Python frame>"


def location_of(row: Any) -> str:
    """A site's ``location``; stack 0 (no Python frame) and unresolved stacks named as such."""
    location = clean_text(pick(row, "location"))
    if location:
        return location
    stack_id = pick(row, "stack_id")
    if stack_id is None or num(stack_id) == 0:
        return NO_FRAME
    return f"stack {clean_text(stack_id)} (frames not recorded)"


def sites(
    rows: Any, count_key: str = "allocations", bytes_key: str = "bytes_allocated"
) -> list[dict[str, Any]]:
    """Allocation sites ``[{function, where, location, pid, count, bytes, live_bytes, trace}]``."""
    out = []
    for r in rows_of(rows):
        location = location_of(r)
        function, where = split_location(location)
        trace = pick(r, "trace", default=[])
        out.append(
            {
                "function": function,
                "where": where,
                "location": location,
                "pid": clean_text(pick(r, "pid")),
                "count": num(pick(r, count_key)),
                "bytes": num(pick(r, bytes_key)),
                "live_bytes": num(pick(r, "live_bytes")),
                "trace": " ← ".join(clean_text(f) for f in trace[:6])
                if isinstance(trace, list)
                else "",
            }
        )
    return out


def run_span(reports: Reports) -> tuple[int, int | None]:
    """(start, end) of the run in ns from the process records; start 0 when unknown."""
    mem, perf, life = (report(reports, k) for k in ("memory_analysis", "performance", "lifetime"))
    procs = rows_of(pick(mem, "processes")) or rows_of(pick(perf, "per_process"))
    starts = [num(pick(p, "start_ts_ns", "first_ts_ns")) for p in procs]
    ends = [num(pick(p, "end_ts_ns", "last_ts_ns")) for p in procs]
    rates = pick(perf, "rates_over_time", default={})
    starts.append(num(pick(rates, "start_ts_ns")))
    ends.append(num(pick(rates, "end_ts_ns")))
    for series in rows_of(pick(mem, "memory_over_time")):
        points = rows_of(pick(series, "points"))
        if points:
            starts.append(num(pick(points[0], "ts_ns")))
    starts += [num(pick(v, "created_ts_ns")) for v in rows_of(pick(life, "lifecycle_events"))]
    known_starts = [s for s in starts if s is not None]
    known_ends = [e for e in ends if e is not None]
    return (
        int(min(known_starts)) if known_starts else 0,
        int(max(known_ends)) if known_ends else None,
    )


def run_start(reports: Reports) -> int:
    """The run's first timestamp (ns) the reports know of; 0 when none is given."""
    return run_span(reports)[0]


def scopes(life: Mapping[str, Any], t0: int) -> list[dict[str, Any]]:
    """Scope instances ``[{scope, pid, tid, variable_count, total_size, deep_size, ...}]``."""
    out = []
    names = {
        (clean_text(pick(v, "pid")), clean_text(pick(v, "tid"))): clean_text(n)
        for v in rows_of(pick(life, "lifecycle_events"))
        if (n := pick(v, "thread_name")) is not None
    }
    for r in rows_of(pick(pick(life, "scope_analysis"), "scopes")):
        start, end = num(pick(r, "enter_ts_ns")), num(pick(r, "exit_ts_ns"))
        pid, tid = clean_text(pick(r, "pid")), clean_text(pick(r, "tid"))
        out.append(
            {
                "scope": clean_text(pick(r, "name")),
                "pid": pid,
                "tid": names.get((pid, tid), tid),
                "variable_count": num(pick(r, "variable_count")),
                "total_size": num(pick(r, "total_size_bytes")),
                "deep_size": num(pick(r, "total_deep_size_bytes")),
                "alive_at_end": num(pick(r, "alive_at_end")),
                "start_s": None if start is None else (start - t0) / 1e9,
                "end_s": None if end is None else (end - t0) / 1e9,
                "duration_ns": num(pick(r, "duration_ns")),
            }
        )
    return out


def links(life: Mapping[str, Any]) -> list[dict[str, str]]:
    """Alias and containment links: ``[{kind, a, b, a_key, b_key}]`` (keys are pid:var_id)."""
    out = []
    for r in rows_of(pick(life, "aliases")):
        pid = pick(r, "pid", default="")
        names = text_list(pick(r, "names"))
        ids = text_list(pick(r, "var_ids"))
        keys = [f"{pid}:{i}" for i in ids] if len(ids) == len(names) else [""] * len(names)
        if not names:
            continue
        out += [
            {"kind": "alias", "a": names[0], "b": n, "a_key": keys[0], "b_key": k}
            for n, k in zip(names[1:], keys[1:], strict=True)
        ]
    for r in rows_of(pick(life, "containment")):
        pid = pick(r, "pid", default="")
        out.append(
            {
                "kind": "contains",
                "a": clean_text(pick(r, "container_name", default=pick(r, "container_var_id"))),
                "b": clean_text(pick(r, "contained_name", default=pick(r, "contained_var_id"))),
                "a_key": f"{pid}:{pick(r, 'container_var_id')}",
                "b_key": f"{pid}:{pick(r, 'contained_var_id')}",
            }
        )
    return out


def _argv(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(clean_text(a) for a in value)
    return clean_text(value)


def processes(reports: Reports) -> list[dict[str, Any]]:
    """The processes of the run: pid, parent, host, command line, exit code, duration."""
    procs = rows_of(pick(report(reports, "memory_analysis"), "processes")) or rows_of(
        pick(report(reports, "performance"), "per_process")
    )
    out = []
    for p in procs:
        start, end = (
            num(pick(p, "start_ts_ns", "first_ts_ns")),
            num(pick(p, "end_ts_ns", "last_ts_ns")),
        )
        out.append(
            {
                "pid": clean_text(pick(p, "pid")),
                "ppid": clean_text(pick(p, "ppid")),
                "host": clean_text(pick(p, "host")),
                "argv": _argv(pick(p, "argv")),
                "exit_code": num(pick(p, "exit_code")),
                "mode": clean_text(pick(p, "mode")),
                "duration_ns": (end - start) if start is not None and end is not None else None,
                "active_memory": num(pick(pick(p, "memory_stats"), "active_memory")),
                "peak_memory": num(pick(pick(p, "memory_stats"), "peak_memory")),
            }
        )
    return out


def problem_messages(reports: Reports) -> dict[str, str]:
    """Map each unusable kind to its message."""
    return {k: p.message for k, p in problems(reports).items()}
