"""Dashboard panels for the flame graph, security, complex types, performance, FFI; the model."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from memscope.exporters import charts, extract
from memscope.exporters.dashboard_model import (
    CHART_WIDTH,
    SITE_COLUMNS,
    Item,
    alarm,
    card,
    cards,
    chart,
    memory_time,
    note,
    overview,
    panel,
    table,
    types_panel,
    variables_panel,
)
from memscope.exporters.extract import clean_text, num, pick, rows_of, text_list
from memscope.exporters.flame_model import clean_flame
from memscope.exporters.formatting import human_bytes, human_count
from memscope.exporters.report_files import Reports, report

SEVERITIES = ("critical", "high", "medium", "low")


def collect_findings(sec: dict[str, Any], t0: int) -> list[dict[str, Any]]:
    """Security findings as flat rows, most severe first."""
    out = []
    for f in rows_of(pick(sec, "violation_reports")):
        stack = pick(f, "stack", default={})
        related = rows_of(pick(f, "related_allocations"))
        sizes = [r["size"] for r in related if num(r.get("size")) is not None]
        ts = num(pick(f, "ts_ns"))
        out.append(
            {
                "severity": clean_text(pick(f, "severity")).lower(),
                "kind": clean_text(pick(f, "kind")),
                "message": clean_text(pick(f, "message")),
                "where": extract.location_of(stack) if isinstance(stack, dict) and stack else "",
                "trace": " ← ".join(text_list(pick(stack, "trace"), 6)),
                "pid": clean_text(pick(f, "pid")),
                "t_s": None if ts is None else (ts - t0) / 1e9,
                "related": len(related),
                "bytes": sum(sizes) if sizes else num(pick(f, "alive_bytes", "size")),
                "remediation": clean_text(pick(f, "remediation")),
            }
        )
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda f: rank.get(str(f["severity"]), len(rank)))
    return out


def security_panel(ctx: dict[str, Any]) -> dict[str, Any]:
    """Findings by severity, with stacks and remediation."""
    findings = ctx["findings"]
    counts = Counter(f["severity"] for f in findings)
    measured = ctx["findings_measured"]
    tones = {"critical": "bad", "high": "bad", "medium": "warn", "low": "warn"}
    items: list[Item] = [
        cards(
            [
                card(
                    s.title(),
                    counts.get(s, 0) if measured else None,
                    tone=alarm(counts.get(s, 0), tones[s]),
                )
                for s in SEVERITIES
            ]
        )
    ]
    summary = pick(ctx["security"], "summary", default={})
    retained = pick(summary, "retained_at_exit")
    if isinstance(retained, dict):
        items.append(
            note(
                f"Still allocated at exit: {human_count(num(retained.get('blocks')))} blocks, "
                f"{human_bytes(num(retained.get('bytes')))} from "
                f"{human_count(num(retained.get('sites')))} sites."
            )
        )
    for row in rows_of(pick(summary, "unprovable")):
        if num(row.get("unmatched_frees")) or num(row.get("unrecorded_frees")):
            items.append(
                note(
                    f"pid {clean_text(row.get('pid'))}: "
                    f"{human_count(num(row.get('unmatched_frees')))}"
                    f" frees of blocks never seen allocated, "
                    f"{human_count(num(row.get('unrecorded_frees')))} frees not recorded: findings "
                    "about those blocks cannot be proven.",
                    "warn",
                )
            )
    items.append(
        table(
            "findings",
            "Findings",
            [
                ("severity", "severity", "text"),
                ("kind", "kind", "text"),
                ("message", "finding", "text"),
                ("where", "where", "text"),
                ("trace", "stack", "text"),
                ("pid", "pid", "text"),
                ("t_s", "at", "seconds"),
                ("related", "related blocks", "count"),
                ("bytes", "bytes", "bytes"),
                ("remediation", "remediation", "text"),
            ],
            findings,
        )
    )
    return panel("security", "Security", ("security_violations",), ctx, items)


def complex_panel(ctx: dict[str, Any]) -> dict[str, Any]:
    """Generic types: sizes, nesting, complexity and suggestions."""
    rows: list[dict[str, Any]] = []
    for r in rows_of(pick(ctx["complex"], "complex_type_analysis")):
        suggestions = [clean_text(pick(s, "message")) for s in rows_of(pick(r, "suggestions"))]
        rows.append(
            {
                "type_name": clean_text(pick(r, "type_name")),
                "category": clean_text(pick(r, "category")),
                "count": num(pick(r, "instance_count")),
                "total_size": num(pick(r, "total_size_bytes")),
                "deep_size": num(pick(r, "total_deep_size_bytes")),
                "nesting_depth": num(pick(r, "nesting_depth")),
                "complexity_score": num(pick(r, "complexity_score")),
                "suggestions": " · ".join(suggestions),
                "variables": ", ".join(text_list(pick(r, "variable_names"), 8)),
            }
        )
    top = sorted((r for r in rows if r["deep_size"] is not None), key=lambda r: -r["deep_size"])[
        :15
    ]
    bars = [
        {
            "name": r["type_name"],
            "bytes": r["deep_size"],
            "label": f"{human_bytes(r['deep_size'])} deep · {human_count(r['count'])}×",
        }
        for r in top
    ]
    advice = [r for r in rows if r["suggestions"]]
    items: list[Item] = [
        chart(
            "complex-deep",
            charts.ranked_bars(bars, "Largest types by deep size", CHART_WIDTH - 300, "#B279A2"),
        ),
        table(
            "complex-advice",
            "Suggestions",
            [
                ("type_name", "type", "text"),
                ("count", "objects", "count"),
                ("deep_size", "deep size", "bytes"),
                ("suggestions", "suggestion", "text"),
            ],
            advice,
            sort="deep_size",
        ),
        table(
            "complex",
            "Complex types",
            [
                ("type_name", "type", "text"),
                ("category", "category", "text"),
                ("count", "objects", "count"),
                ("total_size", "size", "bytes"),
                ("deep_size", "deep size", "bytes"),
                ("nesting_depth", "nesting", "count"),
                ("complexity_score", "complexity", "ratio"),
                ("variables", "variables", "text"),
            ],
            rows,
            sort="deep_size",
        ),
    ]
    formula = pick(pick(ctx["complex"], "summary"), "complexity_score_formula")
    if formula:
        items.append(note(f"complexity = {clean_text(formula)}"))
    return panel("complex", "Complex types", ("complex_types",), ctx, items)


def _rate_rows(perf: dict[str, Any], t0: int) -> list[dict[str, Any]]:
    out = []
    for r in rows_of(pick(pick(perf, "rates_over_time"), "points")):
        ts = num(pick(r, "ts_ns"))
        if ts is None:
            continue
        for key, what in (("allocations_per_s", "allocations/s"), ("frees_per_s", "frees/s")):
            value = num(pick(r, key))
            if value is not None:
                out.append({"t_s": (ts - t0) / 1e9, "value": value, "what": what, "series": what})
    return out


def _temporary(perf: dict[str, Any]) -> list[Item]:
    temp = pick(perf, "temporary_allocations", default={})
    if not isinstance(temp, dict) or not temp:
        return [note("Temporary allocations: not measured")]
    sites = extract.sites(pick(temp, "top_sites"), "count", "bytes")
    for row, raw in zip(sites, rows_of(pick(temp, "top_sites")), strict=True):
        row["median_lifetime_ns"] = num(raw.get("median_lifetime_ns"))
    return [
        cards(
            [
                card(
                    "Temporary allocations",
                    num(pick(temp, "count")),
                    "count",
                    "freed soon after being made",
                ),
                card("Freed within", num(pick(temp, "threshold_ns")), "duration_ns"),
                card("Temporary bytes", num(pick(temp, "bytes")), "bytes"),
                card(
                    "Share of allocations", num(pick(temp, "percentage_of_allocations")), "percent"
                ),
            ]
        ),
        table(
            "temporary-sites",
            "Where temporary allocations come from",
            [
                ("function", "function", "text"),
                ("where", "file:line", "text"),
                ("count", "allocations", "count"),
                ("bytes", "bytes", "bytes"),
                ("median_lifetime_ns", "median lifetime", "duration_ns"),
                ("trace", "stack", "text"),
            ],
            sites,
            sort="count",
        ),
    ]


def _cost(perf: dict[str, Any]) -> list[Item]:
    cost = pick(perf, "tracer_cost", default={})
    totals = pick(cost, "totals", default={})
    ingest = rows_of(pick(cost, "ingest"))
    gaps = sum(num(r.get("gaps")) or 0 for r in ingest) if ingest else None
    return [
        cards(
            [
                card("Tracer events", num(pick(totals, "events"))),
                card("Bytes shipped", num(pick(totals, "bytes")), "bytes"),
                card(
                    "Dropped events",
                    num(pick(totals, "drops")),
                    tone=alarm(num(pick(totals, "drops"))),
                ),
                card("Buffer high-water", num(pick(totals, "buffer_high_water"))),
                card("Sequence gaps", gaps, tone=alarm(gaps)),
            ]
        ),
        table(
            "ingest",
            "Ingest per producer",
            [
                ("producer", "producer", "text"),
                ("pid", "pid", "text"),
                ("batches", "batches", "count"),
                ("events", "events", "count"),
                ("gaps", "gaps", "count"),
                ("duplicates", "duplicates", "count"),
                ("rejected", "rejected", "count"),
            ],
            [
                {
                    k: (clean_text(r.get(k)) if k in ("producer", "pid") else num(r.get(k)))
                    for k in (
                        "producer",
                        "pid",
                        "batches",
                        "events",
                        "gaps",
                        "duplicates",
                        "rejected",
                    )
                }
                for r in ingest
            ],
        ),
    ]


def performance_panel(ctx: dict[str, Any]) -> dict[str, Any]:
    """Rates, size histogram, hot sites, temporary allocations, threads and tracer cost."""
    perf = ctx["performance"]
    hottest = pick(perf, "hottest_sites", default={})
    items: list[Item] = [
        chart("rates", charts.rates(_rate_rows(perf, ctx["span"][0]), CHART_WIDTH, 220)),
        chart("histogram", charts.size_distribution(extract.distribution(perf), CHART_WIDTH, 200)),
        table(
            "hot-sites-bytes",
            "Hottest sites by bytes",
            SITE_COLUMNS,
            extract.sites(pick(hottest, "by_bytes")),
            sort="bytes",
        ),
        table(
            "hot-sites-count",
            "Hottest sites by count",
            SITE_COLUMNS,
            extract.sites(pick(hottest, "by_count")),
            sort="count",
        ),
        *_temporary(perf),
        table(
            "threads",
            "Per thread",
            [
                ("pid", "pid", "text"),
                ("tid", "thread", "text"),
                ("name", "name", "text"),
                ("allocations", "allocations", "count"),
                ("bytes", "bytes", "bytes"),
                ("live_bytes", "live at end", "bytes"),
            ],
            [
                {
                    "pid": clean_text(pick(r, "pid")),
                    "tid": clean_text(pick(r, "tid")),
                    "name": clean_text(pick(r, "thread_name")),
                    "allocations": num(pick(r, "allocations")),
                    "bytes": num(pick(r, "bytes_allocated")),
                    "live_bytes": num(pick(r, "live_bytes")),
                }
                for r in rows_of(pick(perf, "per_thread"))
            ],
            sort="bytes",
        ),
        *_cost(perf),
    ]
    return panel("performance", "Performance", ("performance",), ctx, items)


def _details(value: Any) -> str:
    if isinstance(value, dict):
        return clean_text(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return clean_text(value)


def ffi_panel(ctx: dict[str, Any]) -> dict[str, Any]:
    """Native allocations, FFI boundary events, native leaks and risks."""
    ffi = ctx["ffi"]
    summary = pick(ffi, "summary", default={})
    boundary = pick(ffi, "boundary_events", default={})
    t0 = ctx["span"][0]
    libraries = text_list(pick(boundary, "libraries"))
    items: list[Item] = [
        cards(
            [
                card("Native blocks", num(pick(summary, "native_blocks"))),
                card("Native bytes", num(pick(summary, "native_bytes")), "bytes"),
                card("Boundary events", num(pick(summary, "boundary_events"))),
                card("Libraries loaded", num(pick(summary, "libraries_loaded"))),
            ]
        )
    ]
    if libraries:
        items.append(note("Libraries: " + ", ".join(libraries[:20])))
    items.append(
        table(
            "ffi-sources",
            "Native memory by source",
            [
                ("source", "source", "text"),
                ("blocks", "blocks", "count"),
                ("bytes", "bytes", "bytes"),
                ("live_blocks", "live blocks", "count"),
                ("live_bytes", "live bytes", "bytes"),
            ],
            [
                {
                    "source": clean_text(pick(r, "source")),
                    **{k: num(r.get(k)) for k in ("blocks", "bytes", "live_blocks", "live_bytes")},
                }
                for r in rows_of(pick(ffi, "native_allocations"))
            ],
            sort="bytes",
        )
    )
    items.append(
        table(
            "ffi-risks",
            "Risks",
            [
                ("severity", "severity", "text"),
                ("kind", "kind", "text"),
                ("message", "risk", "text"),
                ("count", "count", "count"),
                ("bytes", "bytes", "bytes"),
            ],
            [
                {
                    "severity": clean_text(pick(r, "severity")),
                    "kind": clean_text(pick(r, "kind")),
                    "message": clean_text(pick(r, "message")),
                    "count": num(pick(r, "count")),
                    "bytes": num(pick(r, "bytes")),
                }
                for r in rows_of(pick(ffi, "risks"))
            ],
        )
    )
    leaks = extract.sites(pick(ffi, "native_leaks"), "blocks", "bytes")
    for row, raw in zip(leaks, rows_of(pick(ffi, "native_leaks")), strict=True):
        row["domain"] = clean_text(raw.get("domain"))
    items.append(
        table(
            "ffi-leaks",
            "Native leaks",
            [
                ("domain", "domain", "text"),
                ("function", "function", "text"),
                ("where", "file:line", "text"),
                ("count", "blocks", "count"),
                ("bytes", "bytes", "bytes"),
                ("trace", "stack", "text"),
            ],
            leaks,
            sort="bytes",
        )
    )
    items.append(
        table(
            "ffi-events",
            "FFI boundary events",
            [
                ("t_s", "at", "seconds"),
                ("pid", "pid", "text"),
                ("tid", "thread", "text"),
                ("event", "event", "text"),
                ("details", "details", "text"),
                ("location", "where", "text"),
            ],
            [
                {
                    "t_s": (r["ts_ns"] - t0) / 1e9 if num(r.get("ts_ns")) is not None else None,
                    "pid": clean_text(pick(r, "pid")),
                    "tid": clean_text(pick(r, "tid")),
                    "event": clean_text(pick(r, "event")),
                    "details": _details(pick(r, "details")),
                    "location": clean_text(pick(r, "location")),
                }
                for r in rows_of(pick(boundary, "events"))
            ],
        )
    )
    return panel("ffi", "FFI & native", ("unsafe_ffi",), ctx, items)


def flame_panel(ctx: dict[str, Any]) -> dict[str, Any]:
    """The flame graph of the bytes alive at the peak and at the end (interactive)."""
    model = clean_flame(ctx["memory"])
    items: list[Item] = []
    if model is None:
        if ctx["memory"]:
            items.append(
                note(
                    "This memory analysis has no flame graph data (written by an "
                    "older memscope, or damaged): run `memscope analyze` again.",
                    "warn",
                )
            )
    else:
        items.append(
            note(
                "Width is the bytes alive, callers above the frames they called. "
                "Hover a frame for details, click to zoom, search by function or "
                "file; `memscope flamegraph RUN --temporal` adds a time window."
            )
        )
        items.append({"type": "flame", "id": "flame", "model": model})
    return panel("flame", "Flame graph", ("memory_analysis",), ctx, items)


PANELS = (
    overview,
    memory_time,
    flame_panel,
    types_panel,
    variables_panel,
    security_panel,
    complex_panel,
    performance_panel,
    ffi_panel,
)


def build_model(reports: Reports) -> dict[str, Any]:
    """The whole dashboard content as one JSON-ready dict."""
    mem, life = report(reports, "memory_analysis"), report(reports, "lifetime")
    span = extract.run_span(reports)
    sec = report(reports, "security_violations")
    variables = extract.variables(mem, life, span[0])
    ctx = {
        "span": span,
        "types": extract.largest_variables_first(extract.types(mem), variables),
        "problems": extract.problem_messages(reports),
        "stats": extract.stats(mem),
        "series": extract.memory_over_time(mem, span[0]),
        "peaks": extract.process_peaks(mem, span[0]),
        "variables": variables,
        "processes": extract.processes(reports),
        "findings": collect_findings(sec, span[0]),
        "findings_measured": bool(sec),
        "memory": mem,
        "lifetime": life,
        "security": sec,
        "complex": report(reports, "complex_types"),
        "performance": report(reports, "performance"),
        "ffi": report(reports, "unsafe_ffi"),
    }
    meta = pick(mem, "metadata", default={})
    return {
        "format": 1,
        "meta": {
            "generated_at": clean_text(pick(meta, "generated_at", default="")),
            "log_id": clean_text(pick(meta, "source_log_id", default="")),
            "processes": ctx["processes"],
        },
        "problems": ctx["problems"],
        "panels": [build(ctx) for build in PANELS],
    }
