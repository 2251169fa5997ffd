"""Dashboard panels for complex types, performance and FFI, and the whole model."""

from __future__ import annotations

from typing import Any

from memscope.exporters import _charts, _extract
from memscope.exporters._dashboard_model import (
    CHART_WIDTH,
    SITE_COLUMNS,
    Item,
    _site_rows,
    card,
    cards,
    chart,
    collect_findings,
    memory_time,
    note,
    overview,
    panel,
    security_panel,
    table,
    types_panel,
    variables_panel,
)
from memscope.exporters._extract import clean_text, pick, rows_of
from memscope.exporters._format import human_bytes, human_count
from memscope.exporters._reports import Reports, report


def _num(value: Any) -> Any:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def complex_panel(reports: Reports, ctx: dict[str, Any]) -> dict[str, Any]:
    """Generic types: sizes, nesting, complexity and suggestions."""
    rows = []
    for r in rows_of(pick(report(reports, "complex_types"), "complex_type_analysis", "types")):
        suggestions = pick(r, "suggestions", default=[])
        rows.append({
            "type_name": clean_text(pick(r, "type_name", "name")),
            "count": _num(pick(r, "count", "instance_count")),
            "total_size": _num(pick(r, "total_size", "size")),
            "deep_size": _num(pick(r, "deep_size", "total_deep_size")),
            "nesting_depth": _num(pick(r, "nesting_depth", "depth")),
            "complexity_score": _num(pick(r, "complexity_score", "score")),
            "suggestions": " · ".join(clean_text(s if not isinstance(s, dict) else
                                                 pick(s, "message", "text", default=""))
                                      for s in suggestions) if isinstance(suggestions, list)
            else clean_text(suggestions),
        })
    top = sorted((r for r in rows if r["deep_size"] is not None),
                 key=lambda r: -r["deep_size"])[:15]
    bars = [{"name": r["type_name"], "bytes": r["deep_size"],
             "label": f"{human_bytes(r['deep_size'])} deep · {human_count(r['count'])}×"}
            for r in top]
    items: list[Item] = [
        chart("complex-deep", _charts.ranked_bars(bars, "Largest types by deep size",
                                                  CHART_WIDTH - 300, "#B279A2")),
        table("complex", "Complex types", [
            ("type_name", "type", "text"), ("count", "objects", "count"),
            ("total_size", "size", "bytes"), ("deep_size", "deep size", "bytes"),
            ("nesting_depth", "nesting", "count"), ("complexity_score", "complexity", "count"),
            ("suggestions", "suggestions", "text")], rows, sort="deep_size"),
    ]
    return panel("complex", "Complex types", ("complex_types",), reports, items)


def _rate_rows(perf: dict[str, Any], t0: int) -> list[dict[str, Any]]:
    out = []
    for r in rows_of(pick(perf, "rates", "rates_over_time")):
        ts = _num(pick(r, "ts_ns"))
        if ts is None:
            continue
        pid = clean_text(pick(r, "pid", default="all"))
        for key, what in (("allocs_per_s", "allocations/s"), ("frees_per_s", "frees/s")):
            value = _num(pick(r, key))
            if value is not None:
                out.append({"t_s": (ts - t0) / 1e9, "value": value, "what": what,
                            "series": f"pid {pid} {what}"})
    return out


def _histogram(perf: dict[str, Any]) -> list[dict[str, Any]]:
    return _extract.distribution({"allocation_distribution": pick(
        perf, "size_histogram", "size_distribution", default=[])})


def _temporary(perf: dict[str, Any]) -> list[Item]:
    temp = pick(perf, "temporary_allocations", default={})
    if not isinstance(temp, dict) or not temp:
        return [note("Temporary allocations: not measured")]
    threshold = _num(pick(temp, "threshold_ns"))
    items: list[Item] = [cards([
        card("Temporary allocations", _num(pick(temp, "count"))),
        card("Freed within", threshold, "duration_ns"),
        card("Temporary bytes", _num(pick(temp, "total_size", "bytes")), "bytes"),
    ])]
    sites = _site_rows(_extract.sites(temp, "sites", "hot_sites"))
    if sites:
        items.append(table("temporary-sites", "Sites of temporary allocations", SITE_COLUMNS,
                           sites, sort="count"))
    return items


def performance_panel(reports: Reports, ctx: dict[str, Any]) -> dict[str, Any]:
    """Rates, size histogram, hot sites, temporary allocations, threads and tracer cost."""
    perf = report(reports, "performance")
    cost = pick(perf, "tracer_cost", "tracer", default={})
    items: list[Item] = [
        chart("rates", _charts.rates(_rate_rows(perf, ctx["t0"]), CHART_WIDTH, 220)),
        chart("histogram", _charts.size_distribution(_histogram(perf), CHART_WIDTH, 200)),
        table("hot-sites", "Hot allocation sites", SITE_COLUMNS,
              _site_rows(_extract.sites(perf, "hot_sites", "top_sites")), sort="bytes"),
        *_temporary(perf),
        table("threads", "Per thread", [("pid", "pid", "text"), ("tid", "thread", "text"),
                                        ("allocations", "allocations", "count"),
                                        ("bytes", "bytes", "bytes")],
              [{"pid": clean_text(pick(r, "pid")), "tid": clean_text(pick(r, "tid")),
                "allocations": _num(pick(r, "allocations", "count")),
                "bytes": _num(pick(r, "total_size", "bytes"))}
               for r in rows_of(pick(perf, "per_thread", "threads"))]),
        cards([
            card("Tracer events", _num(pick(cost, "events"))),
            card("Bytes shipped", _num(pick(cost, "bytes_shipped")), "bytes"),
            card("Dropped events", _num(pick(cost, "drops", "dropped"))),
            card("Buffer high-water", _num(pick(cost, "buffer_high_water")), "bytes"),
        ]),
    ]
    return panel("performance", "Performance", ("performance",), reports, items)


def ffi_panel(reports: Reports, ctx: dict[str, Any]) -> dict[str, Any]:
    """Native allocations, FFI boundary events, native leaks and risks."""
    ffi = report(reports, "unsafe_ffi")
    native = pick(ffi, "native_allocations", default={})
    native = native if isinstance(native, dict) else {}
    items: list[Item] = [cards([
        card("Native allocations", _num(pick(native, "count"))),
        card("Native bytes", _num(pick(native, "total_size", "bytes")), "bytes"),
        card("Boundary events", len(rows_of(pick(ffi, "boundary_events"))) if ffi else None),
        card("Native leaks", len(rows_of(pick(ffi, "native_leaks", "leaks"))) if ffi else None),
    ])]
    items.append(table("ffi-domains", "Native memory by domain", [
        ("domain", "domain", "text"), ("count", "allocations", "count"),
        ("total_size", "bytes", "bytes")],
        [{"domain": clean_text(pick(r, "domain")), "count": _num(pick(r, "count")),
          "total_size": _num(pick(r, "total_size", "bytes"))}
         for r in rows_of(pick(native, "by_domain"))]))
    t0 = ctx["t0"]
    items.append(table("ffi-events", "FFI boundary events", [
        ("t_s", "time (s)", "seconds"), ("pid", "pid", "text"), ("tid", "thread", "text"),
        ("event", "event", "text"), ("details", "details", "text")],
        [{"t_s": (r["ts_ns"] - t0) / 1e9 if _num(r.get("ts_ns")) is not None else None,
          "pid": clean_text(pick(r, "pid")), "tid": clean_text(pick(r, "tid")),
          "event": clean_text(pick(r, "event", "kind")),
          "details": clean_text(pick(r, "details", default=""))}
         for r in rows_of(pick(ffi, "boundary_events"))]))
    items.append(table("ffi-leaks", "Native leaks", [
        ("domain", "domain", "text"), ("size", "size", "bytes"), ("where", "stack", "text")],
        [{"domain": clean_text(pick(r, "domain")), "size": _num(pick(r, "size")),
          "where": _stack(pick(r, "stack"))} for r in rows_of(pick(ffi, "native_leaks"))]))
    items.append(table("ffi-risks", "Risks", [
        ("severity", "severity", "text"), ("message", "risk", "text")],
        [{"severity": clean_text(pick(r, "severity")),
          "message": clean_text(pick(r, "message", "description"))}
         for r in rows_of(pick(ffi, "risks"))]))
    return panel("ffi", "FFI & native", ("unsafe_ffi",), reports, items)


def _stack(stack: Any) -> str:
    from memscope.exporters._dashboard_model import _frame_text

    return clean_text(_frame_text(stack))


PANELS = (overview, memory_time, types_panel, variables_panel, security_panel, complex_panel,
          performance_panel, ffi_panel)


def build_model(reports: Reports) -> dict[str, Any]:
    """The whole dashboard content as one JSON-ready dict."""
    mem, life = report(reports, "memory_analysis"), report(reports, "lifetime")
    t0 = _extract.run_start(reports)
    findings = collect_findings(reports)
    ctx = {
        "t0": t0,
        "stats": _extract.stats(mem),
        "series": _extract.memory_over_time(mem, t0),
        "types": _extract.types(mem),
        "variables": _extract.variables(mem, life, t0),
        "findings": findings,
        "findings_measured": bool(report(reports, "security_violations")),
    }
    meta = pick(mem, "metadata", default={})
    return {
        "format": 1,
        "meta": {
            "generated_at": clean_text(pick(meta, "generated_at", default="")),
            "log_id": clean_text(pick(meta, "log_id", default="")),
            "processes": _extract.processes(reports),
        },
        "problems": _extract.problem_messages(reports),
        "panels": [build(reports, ctx) for build in PANELS],
    }
