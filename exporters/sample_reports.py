"""A synthetic set of the six analysis files, for tests, benchmarks and screenshots.

The files follow the analyzers' JSON Schemas (``analyzers/schemas``). Their numbers come from a
seeded random run, and every aggregate is computed from the same generated values, so the
files agree with one another (hierarchy totals equal the tracked sizes, and so on). Any
number of variables and allocations can be asked for, and ``names`` replaces every traced name
(variables, types, scopes, functions, files, argv) for hostile-input tests. Nothing here is
used by the exporters themselves.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from memscope.exporters.report_files import KINDS

HOSTILE_NAMES: tuple[str, ...] = (
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "\"'><svg onload=alert(1)>",
    "{{7*7}}",
    "line\u2028sep\u2029end",
    "&amp;<b>bold</b>",
    '=HYPERLINK("http://127.0.0.1/","x")',
)

_TYPES: tuple[tuple[str, str, str], ...] = (
    ("Collections", "Lists", "list[int]"),
    ("Collections", "Lists", "list[str]"),
    ("Collections", "Dicts", "dict[str, list[int]]"),
    ("Collections", "Dicts", "dict[str, int]"),
    ("Collections", "Sets", "set[str]"),
    ("Text", "Strings", "str"),
    ("Text", "Bytes", "bytes"),
    ("Numbers", "Integers", "int"),
    ("Numbers", "Floats", "float"),
    ("Objects", "Instances", "app.models.User"),
    ("Arrays/Buffers", "NumPy arrays", "numpy.ndarray[float64]"),
    ("Arrays/Buffers", "Buffers", "bytearray"),
    ("Callables", "Functions", "function"),
    ("Modules and Code", "Code", "code"),
)
_SCOPES = ("<module>", "load_users", "parse_rows", "build_index", "worker")
_SITES = (
    "load_users (app/io.py:14)",
    "parse_rows (app/parse.py:31)",
    "build_index (app/index.py:52)",
    "<listcomp> (app/parse.py:33)",
    "worker (app/pool.py:18)",
    "__init__ (app/models.py:9)",
    "read (lib/csv.py:120)",
    "decode (lib/json/decoder.py:337)",
)
_BUCKETS = (
    ("tiny", 0, 64),
    ("small", 65, 256),
    ("medium", 257, 1024),
    ("large", 1025, 4096),
    ("huge", 4097, 16384),
    ("massive", 16385, None),
)


class _Run:
    """The generated facts of one imaginary run; the six files are derived from them."""

    def __init__(self, n_vars: int, n_allocs: int, names: tuple[str, ...], seed: int) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.names = names
        self.pids = [4242, 4243]
        self.t0 = 1_000_000_000
        self.duration = 5_000_000_000
        self.n_allocs = n_allocs
        self.sites = list(_SITES) + [f"{n} ({n}.py:1)" for n in names]
        self.variables = [self._variable(i) for i in range(n_vars)]
        sample = min(n_allocs, 20_000)
        self.sizes = sorted(int(rng.lognormvariate(5, 1.6)) + 1 for _ in range(sample))
        self.scale = n_allocs / max(1, sample)
        self.total_allocated = int(sum(self.sizes) * self.scale)
        self.frees = int(n_allocs * 0.93)

    def _name(self, i: int, fallback: str) -> str:
        if not self.names:
            return fallback
        base = self.names[i % len(self.names)]
        return base if i < len(self.names) else f"{base}_{i}"

    def _variable(self, i: int) -> dict[str, Any]:
        rng = self.rng
        cat, sub, type_name = _TYPES[rng.randrange(len(_TYPES))]
        size = int(rng.lognormvariate(7, 2)) + 16
        created = self.t0 + rng.randrange(self.duration * 9 // 10)
        alive = rng.random() < 0.3
        died = (
            None
            if alive
            else min(self.t0 + self.duration, created + int(rng.expovariate(1 / 4e8)) + 1)
        )
        pid = self.pids[0] if rng.random() < 0.8 else self.pids[1]
        scope = _SCOPES[rng.randrange(len(_SCOPES))]
        return {
            "pid": pid,
            "tid": 1 + rng.randrange(3),
            "var_id": i + 1,
            "name": self._name(i, f"var_{i}"),
            "type_name": self._name(i, type_name) if i % 3 == 0 else type_name,
            "size": size,
            "deep_size": size + rng.randrange(0, 4 * size),
            "scope": self._name(i, scope) if i % 2 == 0 else scope,
            "created_ts_ns": created,
            "died_ts_ns": died,
            "lifetime_ns": None if died is None else died - created,
            "alive_at_end": alive,
            "category": cat,
            "subcategory": sub,
        }


def _meta(analyzer: str, run: _Run) -> dict[str, Any]:
    return {
        "format_version": "1.0",
        "analyzer": analyzer,
        "description": f"synthetic {analyzer} report",
        "generated_at": "2026-01-02T03:04:05Z",
        "generator": "memscope.exporters.sample_reports",
        "source_log_id": "synthetic-0001",
        "processes": run.pids,
        "modes": {str(p): "full" for p in run.pids},
    }


def _site(run: _Run, i: int, location: str, pid: int) -> dict[str, Any]:
    count = max(1, run.n_allocs // (i + 2))
    return {
        "pid": pid,
        "stack_id": i + 1,
        "allocations": count,
        "bytes_allocated": max(1, run.total_allocated // (i + 3)),
        "location": location,
        "trace": [location, "<module> (app/main.py:3)"],
    }


def _stats(run: _Run, active: int, peak: int, peak_ts: int) -> dict[str, Any]:
    sizes = run.sizes
    tracked = len(run.variables)
    return {
        "active_memory": active,
        "peak_memory": peak,
        "active_allocations": run.n_allocs - run.frees,
        "total_allocations": run.n_allocs,
        "total_allocated": run.total_allocated,
        "total_deallocations": run.frees,
        "total_freed": max(0, run.total_allocated - active),
        "unmatched_frees": 0,
        "unrecorded_frees": 0,
        "folded_allocations": 0,
        "folded_bytes": 0,
        "tracked_variables": tracked,
        "peak_ts_ns": peak_ts,
        "memory_efficiency": round(100 * active / peak, 2) if peak else None,
        "fragmentation": round(100 * (peak - active) / peak, 2) if peak else None,
        "median_allocation_size": float(sizes[len(sizes) // 2]) if sizes else None,
        "p95_allocation_size": sizes[int(len(sizes) * 0.95)] if sizes else None,
        "allocation_density": round(run.n_allocs / tracked, 3) if tracked else None,
    }


def _hierarchy(run: _Run) -> dict[str, Any]:
    tree: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for v in run.variables:
        tree[v["category"]][v["subcategory"]][v["type_name"]].append(v)
    total = sum(v["size"] for v in run.variables) or 1
    out: dict[str, Any] = {}
    for cat, subs in tree.items():
        cat_total = sum(v["size"] for ts in subs.values() for vs in ts.values() for v in vs)
        node: dict[str, Any] = {
            "summary": {
                "total_size_bytes": cat_total,
                "subcategory_count": len(subs),
                "percentage_of_total": round(100 * cat_total / total, 2),
            },
            "subcategories": {},
        }
        for sub, types in subs.items():
            sub_total = sum(v["size"] for vs in types.values() for v in vs)
            rows = [
                {
                    "type_name": t,
                    "size_bytes": sum(v["size"] for v in vs),
                    "deep_size_bytes": sum(v["deep_size"] for v in vs),
                    "allocation_count": len(vs),
                    "percentage_of_subcategory": round(
                        100 * sum(v["size"] for v in vs) / sub_total, 2
                    ),
                    "percentage_of_total": round(100 * sum(v["size"] for v in vs) / total, 2),
                    "variable_names": [v["name"] for v in vs],
                }
                for t, vs in types.items()
            ]
            rows.sort(key=lambda r: -r["size_bytes"])
            node["subcategories"][sub] = {
                "summary": {
                    "total_size_bytes": sub_total,
                    "type_count": len(rows),
                    "percentage_of_category": round(100 * sub_total / cat_total, 2),
                    "percentage_of_total": round(100 * sub_total / total, 2),
                },
                "types": rows,
            }
        out[cat] = node
    return out


def _flame(run: _Run, peak: int, active: int) -> dict[str, Any]:
    """A flame model (memscope.analyzers.flame's layout) whose names are the run's."""
    frames = [["<module>", "app/main.py", 3], ["serve", "app/server.py", 40]]
    parent, frame = [-1, 0, 1], [-1, 0, 1]
    leaves = []
    for i in range(6):
        fn = run._name(i, f"handler_{i}")
        frames.append([fn, run._name(i + 1, f"app/h{i}.py"), 10 + i])
        parent.append(2 if i % 2 else 1)
        frame.append(len(frames) - 1)
        leaves.append(len(parent) - 1)
    weights = [run.rng.randrange(1, 100) for _ in leaves]

    def split(total: int) -> list[int]:
        parts = [total * w // sum(weights) for w in weights]
        parts[0] += total - sum(parts)  # the root adds up to the total exactly
        return parts

    return {
        "format": 1,
        "first_ts_ns": run.t0,
        "frames": frames,
        "parent": parent,
        "frame": frame,
        "default": "peak",
        "views": {
            name: {
                "label": label,
                "node": leaves,
                "bytes": split(total),
                "blocks": [1 + b // 4096 for b in split(total)],
                "total": total,
            }
            for name, label, total in (
                ("peak", "at the peak", peak),
                ("end", "alive at the end", active),
            )
        },
    }


def _memory_analysis(run: _Run) -> dict[str, Any]:
    rng = run.rng
    levels = dict.fromkeys(run.pids, 0)
    points: dict[int, list[dict[str, Any]]] = {p: [] for p in run.pids}
    peak = peak_ts = 0
    own = {p: (0, run.t0) for p in run.pids}  # each process's (peak, when)
    steps = 400
    bucket = run.duration // steps
    for step in range(steps):
        for index, pid in enumerate(run.pids):
            change = rng.randrange(-200_000, 260_000) // (index + 1)
            levels[pid] = max(0, levels[pid] + change)
            allocs = max(1, run.n_allocs // (steps * len(run.pids)))
            points[pid].append(
                {
                    "ts_ns": run.t0 + step * bucket,
                    "live_bytes": levels[pid],
                    "allocations": allocs,
                    "frees": int(allocs * 0.93),
                    "bytes_allocated": allocs * 180,
                }
            )
            if levels[pid] > own[pid][0]:
                own[pid] = (levels[pid], run.t0 + step * bucket)
        if sum(levels.values()) > peak:
            peak, peak_ts = sum(levels.values()), run.t0 + step * bucket
    active = sum(levels.values())
    stats = _stats(run, active, peak, peak_ts)
    return {
        "metadata": _meta("memory_analysis", run),
        "memory_stats": stats,
        "processes": [
            {
                "pid": p,
                "ppid": 1 if i == 0 else run.pids[0],
                "host": "synthetic",
                "argv": ["app.py", *(run.names[:2] or ["--users", str(i)])],
                "mode": "full",
                "start_ts_ns": run.t0,
                "end_ts_ns": run.t0 + run.duration,
                "exit_code": 0,
                "memory_stats": dict(
                    stats, active_memory=levels[p], peak_memory=own[p][0], peak_ts_ns=own[p][1]
                )
                if len(run.pids) > 1
                else stats,
            }
            for i, p in enumerate(run.pids)
        ],
        "memory_over_time": [
            {"pid": p, "bucket_ns": bucket, "points": pts} for p, pts in points.items()
        ],
        "memory_hierarchy": _hierarchy(run),
        "tracked_variables": [
            {
                k: v[k]
                for k in (
                    "pid",
                    "tid",
                    "var_id",
                    "name",
                    "type_name",
                    "size",
                    "deep_size",
                    "scope",
                    "created_ts_ns",
                    "died_ts_ns",
                    "lifetime_ns",
                    "alive_at_end",
                    "category",
                    "subcategory",
                )
            }
            for v in run.variables
        ],
        "top_allocation_sites": [
            dict(_site(run, i, loc, run.pids[0]), live_allocations=0, live_bytes=0)
            for i, loc in enumerate(run.sites)
        ],
        "largest_live_allocations": [],
        "flame_graph": _flame(run, peak, active),
    }


def _lifetime(run: _Run) -> dict[str, Any]:
    scopes: dict[tuple[int, str], dict[str, Any]] = {}
    for v in run.variables:
        s = scopes.setdefault(
            (v["pid"], v["scope"]),
            {
                "pid": v["pid"],
                "scope_id": len(scopes) + 1,
                "name": v["scope"],
                "tid": v["tid"],
                "parent_id": 0,
                "variable_count": 0,
                "total_size_bytes": 0,
                "total_deep_size_bytes": 0,
                "alive_at_end": 0,
                "enter_ts_ns": v["created_ts_ns"],
                "exit_ts_ns": v["died_ts_ns"] or v["created_ts_ns"],
            },
        )
        s["variable_count"] += 1
        s["total_size_bytes"] += v["size"]
        s["total_deep_size_bytes"] += v["deep_size"]
        s["alive_at_end"] += v["alive_at_end"]
        s["enter_ts_ns"] = min(s["enter_ts_ns"], v["created_ts_ns"])
        s["exit_ts_ns"] = max(s["exit_ts_ns"], v["died_ts_ns"] or run.t0 + run.duration)
    totals: dict[str, dict[str, Any]] = {}
    for s in scopes.values():
        t = totals.setdefault(
            s["name"], {"name": s["name"], "variable_count": 0, "total_size_bytes": 0}
        )
        t["variable_count"] += s["variable_count"]
        t["total_size_bytes"] += s["total_size_bytes"]
    events = []
    for v in run.variables:
        steps = [{"event": "tracked", "ts_ns": v["created_ts_ns"]}]
        if v["died_ts_ns"] is not None:
            steps.append({"event": "freed", "ts_ns": v["died_ts_ns"]})
        events.append(
            dict(
                {
                    k: v[k]
                    for k in (
                        "var_id",
                        "pid",
                        "tid",
                        "name",
                        "type_name",
                        "scope",
                        "size",
                        "deep_size",
                        "created_ts_ns",
                        "died_ts_ns",
                        "lifetime_ns",
                        "alive_at_end",
                    )
                },
                thread_name="MainThread",
                events=steps,
            )
        )
    vs = run.variables
    lifetimes = sorted(v["lifetime_ns"] for v in vs if v["lifetime_ns"] is not None)
    return {
        "metadata": _meta("lifetime", run),
        "summary": {
            "tracked_variables": len(vs),
            "died": len(lifetimes),
            "alive_at_end": len(vs) - len(lifetimes),
            "median_lifetime_ns": lifetimes[len(lifetimes) // 2] if lifetimes else None,
        },
        "lifecycle_events": events,
        "scope_analysis": {"scopes": list(scopes.values()), "scope_totals": list(totals.values())},
        "aliases": [
            {
                "pid": vs[i]["pid"],
                "object_id": 4096 * i,
                "address": 4096 * i,
                "names": [vs[i]["name"], vs[i + 1]["name"]],
                "var_ids": [vs[i]["var_id"], vs[i + 1]["var_id"]],
            }
            for i in range(0, max(0, len(vs) - 1), 17)
        ],
        "containment": [
            {
                "pid": vs[i]["pid"],
                "container_var_id": vs[i]["var_id"],
                "container_name": vs[i]["name"],
                "contained_var_id": vs[i + 2]["var_id"],
                "contained_name": vs[i + 2]["name"],
            }
            for i in range(0, max(0, len(vs) - 2), 11)
        ],
    }


def _security(run: _Run) -> dict[str, Any]:
    kinds = [
        ("leak", "high"),
        ("double_free", "critical"),
        ("oversized_allocation", "medium"),
        ("domain_mismatch", "high"),
    ]
    reports: list[dict[str, Any]] = []
    for i, (kind, severity) in enumerate(kinds * 3):
        loc = run.sites[i % len(run.sites)]
        stack = {"stack_id": i + 1, "location": loc, "trace": [loc, "<module> (app/main.py:3)"]}
        reports.append(
            {
                "kind": kind,
                "severity": severity,
                "pid": run.pids[0],
                "tid": 1,
                "ts_ns": run.t0 + i * 1000,
                "address": 0x5500_0000 + 32 * i,
                "message": f"{kind.replace('_', ' ')} at {loc}",
                "stack": stack,
                "related_allocations": [
                    {
                        "role": "allocation",
                        "ts_ns": run.t0 + i * 900,
                        "address": 0x5500_0000 + 32 * i,
                        "size": 1024 * (i + 1),
                        "domain": "mem",
                        "tid": 1,
                        "stack": stack,
                    }
                ],
                "remediation": f"release the buffer made at {loc} before returning",
            }
        )
        if kind == "leak":
            growth = [1024 * (i + 1) * step for step in range(1, 9)]
            reports[-1].update(
                confidence="high",
                growth_ratio=1.0,
                alive_bytes=growth[-1],
                live_bytes_at_checkpoints=growth,
            )
    by_kind: dict[str, int] = defaultdict(int)
    by_sev: dict[str, int] = defaultdict(int)
    for r in reports:
        by_kind[r["kind"]] += 1
        by_sev[r["severity"]] += 1
    return {
        "metadata": _meta("security_violations", run),
        "summary": {
            "total_violations": len(reports),
            "by_kind": dict(by_kind),
            "by_severity": dict(by_sev),
        },
        "violation_reports": reports,
    }


def _complex(run: _Run) -> dict[str, Any]:
    by_type: dict[str, dict[str, Any]] = {}
    for v in run.variables:
        t = by_type.setdefault(
            v["type_name"],
            {
                "type_name": v["type_name"],
                "category": v["category"],
                "subcategory": v["subcategory"],
                "instance_count": 0,
                "total_size_bytes": 0,
                "total_deep_size_bytes": 0,
                "nesting_depth": v["type_name"].count("[") + 1,
                "variable_names": [],
            },
        )
        t["instance_count"] += 1
        t["total_size_bytes"] += v["size"]
        t["total_deep_size_bytes"] += v["deep_size"]
        t["variable_names"].append(v["name"])
    for t in by_type.values():
        ratio = max(1.0, t["total_deep_size_bytes"] / max(1, t["total_size_bytes"]))
        t["complexity_score"] = round(2 * t["nesting_depth"] + math.log2(ratio), 3)
        t["suggestions"] = (
            [
                {
                    "kind": "homogeneous_array",
                    "evidence": {"instance_count": t["instance_count"]},
                    "message": f"{t['type_name']}: array('q') or numpy stores the items unboxed",
                }
            ]
            if t["type_name"].startswith("list[int]")
            else []
        )
    rows = sorted(by_type.values(), key=lambda t: -t["total_deep_size_bytes"])
    return {
        "metadata": _meta("complex_types", run),
        "summary": {"type_count": len(rows), "instance_count": len(run.variables)},
        "complex_type_analysis": rows,
    }


def _performance(run: _Run) -> dict[str, Any]:
    rng = run.rng
    steps = 100
    bucket = run.duration // steps
    points = []
    for step in range(steps):
        allocs = max(1, int(run.n_allocs / steps * rng.uniform(0.5, 1.5)))
        frees = int(allocs * 0.93)
        points.append(
            {
                "ts_ns": run.t0 + step * bucket,
                "allocations": allocs,
                "frees": frees,
                "bytes_allocated": allocs * 180,
                "bytes_freed": frees * 170,
                "allocations_per_s": allocs / (bucket / 1e9),
                "frees_per_s": frees / (bucket / 1e9),
                "bytes_allocated_per_s": allocs * 180 / (bucket / 1e9),
            }
        )
    dist = []
    for name, lo, hi in _BUCKETS:
        inside = [s for s in run.sizes if s >= lo and (hi is None or s <= hi)]
        row: dict[str, Any] = {
            "bucket": name,
            "min_bytes": lo,
            "count": int(len(inside) * run.scale),
            "bytes": int(sum(inside) * run.scale),
            "percentage": round(100 * len(inside) / max(1, len(run.sizes)), 2),
        }
        if hi is not None:
            row["max_bytes"] = hi
        dist.append(row)
    sites = [_site(run, i, loc, run.pids[0]) for i, loc in enumerate(run.sites)]
    return {
        "metadata": _meta("performance", run),
        "rates_over_time": {
            "bucket_ns": bucket,
            "start_ts_ns": run.t0,
            "end_ts_ns": run.t0 + run.duration,
            "points": points,
        },
        "allocation_distribution": dist,
        "hottest_sites": {
            "by_count": sorted(sites, key=lambda s: -s["allocations"]),
            "by_bytes": sorted(sites, key=lambda s: -s["bytes_allocated"]),
        },
        "temporary_allocations": {
            "threshold_ns": 1_000_000,
            "count": int(run.n_allocs * 0.6),
            "bytes": int(run.total_allocated * 0.4),
            "percentage_of_allocations": 60.0,
            "top_sites": [
                {
                    "pid": s["pid"],
                    "stack_id": s["stack_id"],
                    "count": s["allocations"] // 2,
                    "bytes": s["bytes_allocated"] // 3,
                    "median_lifetime_ns": 5000.0 * (i + 1),
                    "location": s["location"],
                }
                for i, s in enumerate(sites[:5])
            ],
        },
        "per_thread": [
            {
                "pid": run.pids[0],
                "tid": 1 + i,
                "thread_name": f"worker-{i}",
                "allocations": run.n_allocs // (3 + i),
                "bytes_allocated": run.total_allocated // (3 + i),
            }
            for i in range(3)
        ],
        "per_process": [
            {
                "pid": p,
                "allocations": run.n_allocs // (i + 1),
                "bytes_allocated": run.total_allocated // (i + 1),
            }
            for i, p in enumerate(run.pids)
        ],
        "peak_attribution": {"peak_memory": 0, "holders": []},
        "tracer_cost": {
            "totals": {
                "events": run.n_allocs * 2,
                "bytes": run.n_allocs * 21,
                "drops": 0,
                "buffer_high_water": 4096,
            },
            "producers": [{"pid": p} for p in run.pids],
            "ingest": [
                {
                    "producer": f"synthetic:{p}",
                    "pid": p,
                    "batches": 10,
                    "events": run.n_allocs,
                    "gaps": 0,
                    "duplicates": 0,
                    "rejected": 0,
                }
                for p in run.pids
            ],
        },
    }


def _ffi(run: _Run) -> dict[str, Any]:
    events = [
        {
            "pid": run.pids[0],
            "tid": 1,
            "ts_ns": run.t0 + i * 10_000_000,
            "event": "ctypes.dlopen" if i % 3 == 0 else "ctypes.call_function",
            "details": {"name": "libc.so.6", "function": run.sites[i % len(run.sites)]},
            "location": run.sites[i % len(run.sites)],
        }
        for i in range(12)
    ]
    return {
        "metadata": _meta("unsafe_ffi", run),
        "summary": {
            "native_blocks": 1234,
            "native_bytes": 48 << 20,
            "boundary_events": len(events),
            "libraries_loaded": 1,
        },
        "native_allocations": [
            {
                "source": "raw",
                "blocks": 1000,
                "bytes": 8 << 20,
                "live_blocks": 2,
                "live_bytes": 4096,
            },
            {
                "source": "numpy",
                "blocks": 234,
                "bytes": 40 << 20,
                "live_blocks": 1,
                "live_bytes": 4 << 20,
            },
        ],
        "boundary_events": {
            "by_event": [
                {"event": "ctypes.dlopen", "count": 4},
                {"event": "ctypes.call_function", "count": 8},
            ],
            "events": events,
            "libraries": ["libc.so.6"],
        },
        "native_leaks": [
            {
                "pid": run.pids[0],
                "stack_id": 3,
                "domain": "numpy",
                "blocks": 1,
                "bytes": 4 << 20,
                "location": run.sites[2],
                "trace": [run.sites[2]],
            }
        ],
        "risks": [
            {
                "kind": "native_alive_at_end",
                "severity": "medium",
                "count": 3,
                "bytes": (4 << 20) + 4096,
                "message": "3 native blocks were never freed",
            }
        ],
    }


def _absent_not_null(value: Any) -> Any:
    """Drop keys whose value is None (the analyzers leave unmeasured values out)."""
    if isinstance(value, dict):
        return {k: _absent_not_null(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_absent_not_null(v) for v in value]
    return value


_BUILDERS = {
    "memory_analysis": _memory_analysis,
    "lifetime": _lifetime,
    "security_violations": _security,
    "complex_types": _complex,
    "performance": _performance,
    "unsafe_ffi": _ffi,
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
    """Write the six files ``<base>_<kind>.json`` into ``out_dir``; return kind -> path."""
    run = _Run(n_vars, n_allocs, names, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in KINDS:
        path = out / f"{base}_{kind}.json"
        path.write_text(json.dumps(_absent_not_null(_BUILDERS[kind](run))), encoding="utf-8")
        paths[kind] = path
    return paths
