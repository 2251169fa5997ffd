"""The dashboard's content as plain JSON: a list of panels, each a list of items.

An item is a row of ``cards``, a Vega-Lite ``chart`` spec, a sortable/filterable ``table`` or a
``note``. The page's script draws these generically, so what the dashboard shows is decided
here, in Python, from the six reports. Numbers stay raw (the page formats them by column type:
``bytes``, ``count``, ``fraction``, ``rate``, ``duration_ns``, ``seconds``, ``text``), so
sorting is numeric. Traced strings are data only; the page puts them in the DOM as text.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from memscope.exporters import _charts, _extract
from memscope.exporters._extract import METRICS, pick
from memscope.exporters._reports import Reports, report

Item = dict[str, Any]
CHART_WIDTH = 1040


def card(label: str, value: Any, unit: str = "count", note: str = "") -> dict[str, Any]:
    """One metric card; ``value`` None shows as "not measured"."""
    return {"label": label, "value": value, "unit": unit, "note": note}


def cards(items: list[dict[str, Any]]) -> Item:
    """A row of cards."""
    return {"type": "cards", "cards": items}


def note(text: str, level: str = "info") -> Item:
    """A line of explanation (``info``) or warning (``warn``)."""
    return {"type": "note", "text": text, "level": level}


def table(tid: str, title: str, columns: list[tuple[str, str, str]],
          rows: list[dict[str, Any]], sort: str | None = None) -> Item:
    """A sortable, filterable table; ``columns`` are (key, label, type)."""
    return {
        "type": "table", "id": tid, "title": title,
        "columns": [{"key": k, "label": label, "type": t} for k, label, t in columns],
        "rows": [[r.get(k) for k, _, _ in columns] for r in rows],
        "sort": sort,
    }


def chart(cid: str, chart_obj: Any) -> Item:
    """A Vega-Lite chart from an Altair chart, sized to its container's width."""
    spec = chart_obj.to_dict(validate=False)
    spec.pop("$schema", None)
    config = _charts.theme_config()
    config["padding"] = 8
    spec["config"] = config
    return {"type": "chart", "id": cid, "spec": spec}


def panel(pid: str, title: str, sources: tuple[str, ...], reports: Reports,
          items: list[Item]) -> dict[str, Any]:
    """A panel; ``problem`` names any unusable source file."""
    probs = _extract.problem_messages(reports)
    problem = "; ".join(probs[k] for k in sources if k in probs) or None
    return {"id": pid, "title": title, "sources": list(sources), "problem": problem,
            "items": items}


def _frame_text(stack: Any) -> str:
    frames = [f for f in stack if isinstance(f, dict)] if isinstance(stack, list) else []
    return " ← ".join(
        f"{pick(f, 'function', default='?')} ({pick(f, 'filename', default='?')}:"
        f"{pick(f, 'lineno', default='?')})" for f in frames[:4])


def _site_rows(sites: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(s, where=f"{s['filename']}:{s['lineno']}" if s["lineno"] is not None
                 else s["filename"]) for s in sites]


SITE_COLUMNS = [("function", "function", "text"), ("where", "file:line", "text"),
                ("count", "allocations", "count"), ("bytes", "bytes", "bytes")]


def overview(reports: Reports, ctx: dict[str, Any]) -> dict[str, Any]:
    """Headline cards, the processes and every problem."""
    stats = ctx["stats"]
    units = {"bytes": "bytes", "fraction": "fraction", "rate": "rate", "count": "count"}
    metric_cards = [card(label, stats.get(key), units[unit]) for key, label, unit in METRICS]
    totals = [
        card("Total allocations", stats.get("total_allocations")),
        card("Total frees", stats.get("total_deallocations")),
        card("Total allocated", stats.get("total_allocated"), "bytes"),
        card("Tracked variables", len(ctx["variables"]) if ctx["variables"] else None),
        card("Security findings", len(ctx["findings"]) if ctx["findings_measured"] else None),
    ]
    items: list[Item] = [cards(metric_cards), cards(totals)]
    for kind, message in sorted(_extract.problem_messages(reports).items()):
        items.append(note(f"{kind}: {message}", "warn"))
    items.append(table("processes", "Processes", [
        ("pid", "pid", "text"), ("ppid", "parent", "text"), ("argv", "command line", "text")],
        _extract.processes(reports)))
    return panel("overview", "Overview", ("memory_analysis",), reports, items)


def memory_time(reports: Reports, ctx: dict[str, Any]) -> dict[str, Any]:
    """Active memory over time per process."""
    items = [chart("memory-over-time", _charts.memory_timeline(ctx["series"], CHART_WIDTH, 280))]
    return panel("memory", "Memory over time", ("memory_analysis",), reports, items)


def types_panel(reports: Reports, ctx: dict[str, Any]) -> dict[str, Any]:
    """The category -> type treemap and the type table."""
    rows = [dict(t, variables=", ".join(t["variables"][:12])) for t in ctx["types"]]
    items = [
        chart("type-treemap", _charts.type_treemap(ctx["types"], CHART_WIDTH, 420)),
        table("types", "Types", [
            ("category", "category", "text"), ("subcategory", "subcategory", "text"),
            ("type_name", "type", "text"), ("count", "allocations", "count"),
            ("bytes", "bytes", "bytes"), ("variables", "tracked variables", "text")], rows,
            sort="bytes"),
    ]
    return panel("types", "Types", ("memory_analysis",), reports, items)


def variables_panel(reports: Reports, ctx: dict[str, Any]) -> dict[str, Any]:
    """Tracked variables, their lifetimes, scopes and links."""
    life = report(reports, "lifetime")
    variables = ctx["variables"]
    end = pick(life, "end_ts_ns")
    ends = [v["died_s"] or v["created_s"] or 0 for v in variables]
    end_s = max([(end - ctx["t0"]) / 1e9 if isinstance(end, int | float) else 0.0, *ends, 0.0])
    items: list[Item] = [chart("lifetimes", _charts.lifetimes(variables, end_s, CHART_WIDTH - 300))]
    items.append(table("variables", "Tracked variables", [
        ("name", "name", "text"), ("type_name", "type", "text"), ("scope", "scope", "text"),
        ("size", "size", "bytes"), ("deep_size", "deep size", "bytes"), ("pid", "pid", "text"),
        ("tid", "thread", "text"), ("created_s", "created (s)", "seconds"),
        ("died_s", "died (s)", "seconds"), ("lifetime_ns", "lifetime", "duration_ns")],
        variables, sort="size"))
    items.append(table("scopes", "Scopes", [
        ("scope", "scope", "text"), ("pid", "pid", "text"),
        ("variable_count", "variables", "count"), ("total_size", "total size", "bytes"),
        ("start_s", "first (s)", "seconds"), ("end_s", "last (s)", "seconds")],
        _extract.scopes(life, ctx["t0"]), sort="total_size"))
    items.append(table("links", "Aliases and containment", [
        ("kind", "relation", "text"), ("a", "variable", "text"), ("b", "other", "text")],
        _extract.links(life)))
    return panel("variables", "Variables & lifecycle", ("lifetime",), reports, items)


def security_panel(reports: Reports, ctx: dict[str, Any]) -> dict[str, Any]:
    """Security findings by severity, with stacks and remediation."""
    findings = ctx["findings"]
    severities = Counter(f["severity"] for f in findings)
    order = ("critical", "high", "medium", "low", "info")
    summary = [card(s.title(), severities.get(s, 0) if ctx["findings_measured"] else None)
               for s in order]
    items: list[Item] = [cards(summary), table("findings", "Findings", [
        ("severity", "severity", "text"), ("kind", "kind", "text"),
        ("message", "finding", "text"), ("where", "stack", "text"),
        ("related", "related allocations", "count"), ("bytes", "related bytes", "bytes"),
        ("remediation", "remediation", "text")], findings)]
    return panel("security", "Security", ("security_violations",), reports, items)


def collect_findings(reports: Reports) -> list[dict[str, Any]]:
    """Security findings as flat rows."""
    sec = report(reports, "security_violations")
    out = []
    for f in _extract.rows_of(pick(sec, "violation_reports", "findings", "violations")):
        related = _extract.rows_of(pick(f, "related_allocations", default=[]))
        sizes: list[float] = [r["size"] for r in related
                              if isinstance(r.get("size"), int | float)]
        out.append({
            "severity": _extract.clean_text(pick(f, "severity", default="")).lower(),
            "kind": _extract.clean_text(pick(f, "kind", "violation_type", "type")),
            "message": _extract.clean_text(pick(f, "message", "description")),
            "where": _extract.clean_text(_frame_text(pick(f, "stack", "stack_trace"))),
            "related": len(related),
            "bytes": sum(sizes) if sizes else None,
            "remediation": _extract.clean_text(pick(f, "remediation", "suggestion")),
        })
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    out.sort(key=lambda f: rank.get(str(f["severity"]), 4))
    return out
