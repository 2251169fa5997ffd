"""A synthetic set of the six analysis files, for tests, benchmarks and screenshots.

The numbers are generated from a seeded random walk of allocation events, and every aggregate
in the files is computed from those same generated values, so the files are consistent with one
another (the totals of the categories equal the tracked sizes, and so on). Nothing here is used
by the exporters themselves.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memscope.exporters._reports import KINDS

HOSTILE_NAMES: tuple[str, ...] = (
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "\"'><svg onload=alert(1)>",
    "{{7*7}}",
    "line\u2028sep\u2029end",
    "&amp;<b>bold</b>",
)

_TYPES: tuple[tuple[str, str, str], ...] = (
    ("Collections", "list", "list[int]"),
    ("Collections", "list", "list[str]"),
    ("Collections", "dict", "dict[str, list[int]]"),
    ("Collections", "dict", "dict[str, int]"),
    ("Collections", "set", "set[str]"),
    ("Text", "str", "str"),
    ("Text", "bytes", "bytes"),
    ("Numbers", "int", "int"),
    ("Numbers", "float", "float"),
    ("Objects", "instances", "app.models.User"),
    ("Arrays/Buffers", "numpy", "numpy.ndarray[float64]"),
    ("Arrays/Buffers", "bytearray", "bytearray"),
    ("Callables", "function", "function"),
    ("Modules and Code", "code", "code"),
)

_SCOPES = ("<module>", "load_users", "parse_rows", "build_index", "worker")
_FUNCS = (
    ("load_users", "app/io.py"),
    ("parse_rows", "app/parse.py"),
    ("build_index", "app/index.py"),
    ("<listcomp>", "app/parse.py"),
    ("worker", "app/pool.py"),
    ("__init__", "app/models.py"),
    ("read", "lib/csv.py"),
    ("json_loads", "lib/json/decoder.py"),
)


def _meta(kind: str, pids: list[int]) -> dict[str, Any]:
    return {
        "format_version": "1.0",
        "analyzer": kind,
        "generated_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat(),
        "log_id": "synthetic-0001",
        "processes": [
            {"pid": p, "ppid": 1 if i == 0 else pids[0], "argv": ["python", "app.py", str(i)]}
            for i, p in enumerate(pids)
        ],
    }


class _Run:
    """Generated raw facts of one imaginary run; the six files are derived from it."""

    def __init__(self, n_vars: int, n_allocs: int, names: tuple[str, ...], seed: int) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.pids = [4242, 4243]
        self.t0 = 1_000_000_000_000
        self.duration = 5_000_000_000
        self.n_allocs = n_allocs
        self.variables: list[dict[str, Any]] = []
        for i in range(n_vars):
            cat, sub, type_name = _TYPES[rng.randrange(len(_TYPES))]
            if names:
                name = names[i % len(names)] if i < len(names) else f"{names[i % len(names)]}_{i}"
            else:
                name = f"var_{i}"
            size = int(rng.lognormvariate(7, 2)) + 16
            created = self.t0 + rng.randrange(self.duration * 9 // 10)
            alive = rng.random() < 0.3
            died = None if alive else min(
                self.t0 + self.duration, created + int(rng.expovariate(1 / 4e8))
            )
            self.variables.append({
                "name": name,
                "type_name": names[i % len(names)] if names and i % 3 == 0 else type_name,
                "category": cat,
                "subcategory": sub,
                "size": size,
                "deep_size": size + rng.randrange(0, 4 * size),
                "scope": _SCOPES[rng.randrange(len(_SCOPES))] if not names or i % 2 else name,
                "pid": self.pids[0] if rng.random() < 0.8 else self.pids[1],
                "tid": 139_900_000 + rng.randrange(3),
                "address": 0x7F00_0000_0000 + 64 * i,
                "created_ts_ns": created,
                "died_ts_ns": died,
                "lifetime_ns": None if died is None else died - created,
            })
        self.sizes = [int(rng.lognormvariate(5, 1.6)) + 1 for _ in range(min(n_allocs, 20_000))]
        scale = n_allocs / max(1, len(self.sizes))
        self.total_allocated = int(sum(self.sizes) * scale)
        self.sizes.sort()
        self.funcs = list(_FUNCS) + [(n, f"{n}.py") for n in names]


def _memory_analysis(run: _Run) -> dict[str, Any]:
    rng = run.rng
    series: list[dict[str, Any]] = []
    levels = dict.fromkeys(run.pids, 0)
    peak = 0
    for step in range(400):
        ts = run.t0 + step * run.duration // 400
        for pid_index, pid in enumerate(run.pids):
            change = rng.randrange(-200_000, 260_000) // (pid_index + 1)
            levels[pid] = max(0, levels[pid] + change)
            series.append({"pid": pid, "ts_ns": ts, "active_memory": levels[pid]})
        peak = max(peak, sum(levels.values()))
    active = sum(levels.values())
    sizes = run.sizes
    frees = int(run.n_allocs * 0.93)
    hierarchy: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for var in run.variables:
        entry = hierarchy.setdefault(var["category"], {}).setdefault(var["subcategory"], {})
        t = entry.setdefault(
            var["type_name"], {"type_name": var["type_name"], "total_size": 0,
                               "allocation_count": 0, "variables": []}
        )
        t["total_size"] += var["size"]
        t["allocation_count"] += 1
        t["variables"].append(var["name"])
    categories = [
        {
            "category": cat,
            "total_size": sum(t["total_size"] for sub in subs.values() for t in sub.values()),
            "allocation_count": sum(
                t["allocation_count"] for sub in subs.values() for t in sub.values()
            ),
            "subcategories": [
                {
                    "name": name,
                    "total_size": sum(t["total_size"] for t in types.values()),
                    "allocation_count": sum(t["allocation_count"] for t in types.values()),
                    "types": sorted(types.values(), key=lambda t: -t["total_size"]),
                }
                for name, types in sorted(subs.items())
            ],
        }
        for cat, subs in sorted(hierarchy.items())
    ]
    bounds = [0, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536, 1 << 20, 1 << 62]
    scale = run.n_allocs / max(1, len(sizes))
    distribution = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        inside = [s for s in sizes if lo <= s < hi]
        distribution.append({
            "min_size": lo, "max_size": hi, "count": int(len(inside) * scale),
            "total_size": int(sum(inside) * scale),
        })
    sites = [
        {"function": f, "filename": fn, "lineno": 10 + 7 * i,
         "count": int(run.n_allocs / (i + 2)), "total_size": int(run.total_allocated / (i + 3))}
        for i, (f, fn) in enumerate(run.funcs)
    ]
    return {
        "metadata": _meta("memory", run.pids),
        "memory_stats": {
            "active_memory": active,
            "peak_memory": peak,
            "active_allocations": run.n_allocs - frees,
            "total_allocations": run.n_allocs,
            "total_deallocations": frees,
            "total_allocated": run.total_allocated,
            "memory_efficiency": active / peak if peak else None,
            "median_allocation_size": sizes[len(sizes) // 2] if sizes else None,
            "p95_allocation_size": sizes[int(len(sizes) * 0.95)] if sizes else None,
            "fragmentation": 0.137,
            "allocation_density": run.n_allocs / (run.duration / 1e9),
        },
        "type_categories": categories,
        "tracked_variables": run.variables,
        "memory_over_time": series,
        "allocation_distribution": distribution,
        "top_allocation_sites": sites,
    }


def _lifetime(run: _Run) -> dict[str, Any]:
    scopes: dict[tuple[int, str], dict[str, Any]] = {}
    for var in run.variables:
        key = (var["pid"], var["scope"])
        s = scopes.setdefault(key, {
            "scope": var["scope"], "pid": var["pid"], "variable_count": 0, "total_size": 0,
            "start_ts_ns": var["created_ts_ns"], "end_ts_ns": var["died_ts_ns"] or 0,
        })
        s["variable_count"] += 1
        s["total_size"] += var["size"]
        s["start_ts_ns"] = min(s["start_ts_ns"], var["created_ts_ns"])
        s["end_ts_ns"] = max(s["end_ts_ns"], var["died_ts_ns"] or run.t0 + run.duration)
    names = [v["name"] for v in run.variables]
    aliases = [
        {"address": run.variables[i]["address"], "names": [names[i], names[i + 1]]}
        for i in range(0, max(0, len(names) - 1), 17)
    ]
    containment = [
        {"container": names[i], "contained": names[i + 2]}
        for i in range(0, max(0, len(names) - 2), 11)
    ]
    return {
        "metadata": _meta("lifecycle", run.pids),
        "start_ts_ns": run.t0,
        "end_ts_ns": run.t0 + run.duration,
        "variables": run.variables,
        "scope_analysis": sorted(scopes.values(), key=lambda s: (s["pid"], s["scope"])),
        "aliases": aliases,
        "containment": containment,
    }


def _security(run: _Run) -> dict[str, Any]:
    kinds = [("leak", "high"), ("double_free", "critical"), ("oversized_allocation", "medium"),
             ("allocator_mismatch", "high"), ("unbounded_growth", "low")]
    findings = []
    for i, (kind, severity) in enumerate(kinds * 3):
        func, filename = run.funcs[i % len(run.funcs)]
        findings.append({
            "kind": kind, "severity": severity,
            "message": f"{kind.replace('_', ' ')} in {func}",
            "stack": [{"function": func, "filename": filename, "lineno": 20 + i}],
            "related_allocations": [{"address": 0x5500_0000 + 32 * i, "size": 1024 * (i + 1),
                                     "ts_ns": run.t0 + i * 1000}],
            "remediation": f"release the buffer from {func} before returning",
        })
    return {"metadata": _meta("security", run.pids), "violation_reports": findings}


def _complex(run: _Run) -> dict[str, Any]:
    by_type: dict[str, dict[str, Any]] = {}
    for var in run.variables:
        t = by_type.setdefault(var["type_name"], {
            "type_name": var["type_name"], "count": 0, "total_size": 0, "deep_size": 0,
            "nesting_depth": var["type_name"].count("[") + 1})
        t["count"] += 1
        t["total_size"] += var["size"]
        t["deep_size"] += var["deep_size"]
    for t in by_type.values():
        t["complexity_score"] = round(t["nesting_depth"] * 2.5 + t["count"] / 10, 2)
        t["suggestions"] = (["use array('q') or numpy for large homogeneous lists"]
                            if t["type_name"].startswith("list") else [])
    return {"metadata": _meta("complex", run.pids),
            "complex_type_analysis": sorted(by_type.values(), key=lambda t: -t["deep_size"])}


def _performance(run: _Run) -> dict[str, Any]:
    rng = run.rng
    rates = []
    for pid in run.pids:
        for step in range(100):
            allocs = rng.randrange(50_000, 250_000)
            rates.append({"pid": pid, "ts_ns": run.t0 + step * run.duration // 100,
                          "allocs_per_s": allocs, "frees_per_s": int(allocs * 0.93),
                          "bytes_per_s": allocs * 180})
    hist = [{"min_size": 1 << i, "max_size": 1 << (i + 1),
             "count": sum(1 for s in run.sizes if (1 << i) <= s < (1 << (i + 1)))}
            for i in range(0, 21)]
    sites: list[dict[str, Any]] = [{"function": f, "filename": fn, "lineno": 10 + 7 * i,
              "count": int(run.n_allocs / (i + 2)),
              "total_size": int(run.total_allocated / (i + 3))}
             for i, (f, fn) in enumerate(run.funcs)]
    return {
        "metadata": _meta("performance", run.pids),
        "rates": rates,
        "size_histogram": hist,
        "hot_sites": sites,
        "temporary_allocations": {
            "count": int(run.n_allocs * 0.6), "threshold_ns": 1_000_000,
            "sites": [dict(s, count=s["count"] // 2) for s in sites[:5]]},
        "per_thread": [{"pid": run.pids[0], "tid": 139_900_000 + i,
                        "allocations": run.n_allocs // (3 + i)} for i in range(3)],
        "per_process": [{"pid": p, "allocations": run.n_allocs // (i + 1)}
                        for i, p in enumerate(run.pids)],
        "tracer_cost": {"events": run.n_allocs * 2, "bytes_shipped": run.n_allocs * 21,
                        "drops": 0, "buffer_high_water": 65_536},
    }


def _ffi(run: _Run) -> dict[str, Any]:
    events = [{"pid": run.pids[0], "tid": 139_900_000, "ts_ns": run.t0 + i * 10_000_000,
               "event": ("ctypes.dlopen" if i % 3 == 0 else "ctypes.call_function"),
               "details": f"libc.so.6 {run.funcs[i % len(run.funcs)][0]}"} for i in range(12)]
    return {
        "metadata": _meta("ffi", run.pids),
        "native_allocations": {"count": 1234, "total_size": 48 * 1024 * 1024,
                               "by_domain": [{"domain": "raw", "count": 1000,
                                              "total_size": 8 << 20},
                                             {"domain": "numpy", "count": 234,
                                              "total_size": 40 << 20}]},
        "boundary_events": events,
        "native_leaks": [{"address": 0x6600_0000, "size": 4 << 20, "domain": "numpy",
                          "stack": [{"function": "build_index", "filename": "app/index.py",
                                     "lineno": 31}]}],
        "risks": [{"severity": "medium", "message": "ctypes buffer passed to libc after free"}],
    }


def write_sample_reports(
    out_dir: str | Path,
    *,
    n_vars: int = 40,
    n_allocs: int = 120_000,
    names: tuple[str, ...] = (),
    base: str = "snapshot",
    seed: int = 7,
) -> dict[str, Path]:
    """Write the six files ``<base>_<kind>.json`` into ``out_dir``; return kind -> path.

    ``names`` replaces the variable, type, scope and function names (hostile-name tests).
    """
    run = _Run(n_vars, n_allocs, names, seed)
    builders = {
        "memory_analysis": _memory_analysis, "lifetime": _lifetime,
        "security_violations": _security, "complex_types": _complex,
        "performance": _performance, "unsafe_ffi": _ffi,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in KINDS:
        path = out / f"{base}_{kind}.json"
        path.write_text(json.dumps(builders[kind](run)), encoding="utf-8")
        paths[kind] = path
    return paths
