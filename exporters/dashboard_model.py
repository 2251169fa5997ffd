"""The dashboard's content as plain JSON: a list of panels, each a list of items.

An item is a row of ``cards``, a Vega-Lite ``chart`` spec, a sortable/filterable ``table`` or a
``note``. The page's script draws these generically, so what the dashboard shows is decided
here, in Python, from the six reports. Numbers stay raw (the page formats them by column type:
``bytes``, ``count``, ``percent``, ``ratio``, ``rate``, ``duration_ns``, ``seconds``, ``text``),
so sorting is numeric. Traced strings are data only; the page puts them in the DOM as text.
"""

from __future__ import annotations

from typing import Any

from memscope.exporters import charts, extract, treemap

Item = dict[str, Any]
CHART_WIDTH = 1040

SITE_COLUMNS = [
    ("function", "function", "text"),
    ("where", "file:line", "text"),
    ("pid", "pid", "text"),
    ("count", "allocations", "count"),
    ("bytes", "bytes", "bytes"),
    ("trace", "stack", "text"),
]


def card(
    label: str, value: Any, unit: str = "count", note: str = "", tone: str | None = None
) -> dict[str, Any]:
    """One metric card; ``value`` None shows as "not measured"; ``tone`` ``bad``/``warn``."""
    return {"label": label, "value": value, "unit": unit, "note": note, "tone": tone}


def alarm(value: Any, tone: str = "bad") -> str | None:
    """``tone`` when a counted problem (``value``) is above zero."""
    return tone if isinstance(value, int | float) and value > 0 else None


def cards(items: list[dict[str, Any]]) -> Item:
    """A row of cards."""
    return {"type": "cards", "cards": items}


def note(text: str, level: str = "info") -> Item:
    """A line of explanation (``info``) or warning (``warn``)."""
    return {"type": "note", "text": text, "level": level}


def table(
    tid: str,
    title: str,
    columns: list[tuple[str, str, str]],
    rows: list[dict[str, Any]],
    sort: str | None = None,
) -> Item:
    """A sortable, filterable table; ``columns`` are (key, label, type).

    Columns that no row has a value for are left out.
    """
    if rows:
        columns = [c for c in columns if any(r.get(c[0]) not in (None, "") for r in rows)]
    return {
        "type": "table",
        "id": tid,
        "title": title,
        "columns": [{"key": k, "label": label, "type": t} for k, label, t in columns],
        "rows": [[r.get(k) for k, _, _ in columns] for r in rows],
        "sort": sort,
    }


def chart(cid: str, chart_obj: Any, filters: tuple[str, str, str] | None = None) -> Item:
    """A Vega-Lite chart from an Altair chart.

    ``filters`` = (table id, datum field, hint): clicking a mark filters that table.
    """
    spec = chart_obj.to_dict(validate=False)
    spec.pop("$schema", None)
    config = charts.theme_config()
    config["padding"] = 8
    spec["config"] = config
    item: Item = {"type": "chart", "id": cid, "spec": spec}
    if filters is not None:
        table_id, field, hint = filters
        item["filters"] = {"table": table_id, "field": field, "hint": hint}
    return item


def panel(
    pid: str, title: str, sources: tuple[str, ...], ctx: dict[str, Any], items: list[Item]
) -> dict[str, Any]:
    """A panel; ``problem`` names any unusable source file."""
    probs = ctx["problems"]
    problem = "; ".join(probs[k] for k in sources if k in probs) or None
    return {"id": pid, "title": title, "sources": list(sources), "problem": problem, "items": items}


def _detail_window(memory: Any) -> str | None:
    """The retention note: which window of the log is kept in full detail (None: all of it)."""
    window = extract.pick(extract.pick(memory, "metadata"), "detail_window")
    if not isinstance(window, dict):
        return None
    retired = extract.pick(window, "retired", default={})
    segments = extract.num(extract.pick(retired, "segments"))
    return (
        f"Retention: the figures cover the whole run; the raw events are kept in full "
        f"detail from {extract.clean_text(str(window.get('from')))} to "
        f"{extract.clean_text(str(window.get('to')))} "
        f"({charts.human_count(segments)} older log segments were retired)."
    )


def overview(ctx: dict[str, Any]) -> dict[str, Any]:
    """Headline cards, the processes and every problem."""
    stats = ctx["stats"]
    metric_cards = [
        card(
            label, stats.get(key), unit, charts.metric_note(key, hint, stats, len(ctx["processes"]))
        )
        for key, label, unit, hint in extract.METRICS
    ]
    totals = [
        card("Total allocations", stats.get("total_allocations")),
        card("Total frees", stats.get("total_deallocations")),
        card("Total allocated", stats.get("total_allocated"), "bytes"),
        card("Total freed", stats.get("total_freed"), "bytes"),
        card("Tracked variables", stats.get("tracked_variables")),
        card(
            "Security findings",
            len(ctx["findings"]) if ctx["findings_measured"] else None,
            tone=alarm(len(ctx["findings"]), "warn"),
        ),
        card(
            "Frees of unknown blocks",
            stats.get("unmatched_frees"),
            "count",
            "freed, never seen allocated",
            alarm(stats.get("unmatched_frees"), "warn"),
        ),
    ]
    items: list[Item] = [
        cards(metric_cards),
        cards(totals),
        chart(
            "overview-memory",
            charts.memory_timeline(ctx["series"], CHART_WIDTH, 170, peaks=ctx["peaks"]),
        ),
    ]
    if stats.get("folded_allocations"):
        items.append(
            note(
                f"Sampling: {charts.human_count(stats['folded_allocations'])} small allocations "
                f"({charts.human_bytes(stats.get('folded_bytes'))}) were counted in aggregates "
                "rather than recorded one by one; sizes and counts include them.",
                "warn",
            )
        )
    window = _detail_window(ctx["memory"])
    if window:
        items.append(note(window))
    for kind, message in sorted(ctx["problems"].items()):
        items.append(note(f"{kind}: {message}", "warn"))
    items.append(
        table(
            "processes",
            "Processes",
            [
                ("pid", "pid", "text"),
                ("ppid", "parent", "text"),
                ("host", "host", "text"),
                ("argv", "command line", "text"),
                ("mode", "mode", "text"),
                ("exit_code", "exit", "count"),
                ("duration_ns", "ran for", "duration_ns"),
                ("active_memory", "active", "bytes"),
                ("peak_memory", "peak", "bytes"),
            ],
            ctx["processes"],
        )
    )
    return panel("overview", "Overview", ("memory_analysis",), ctx, items)


def _hex(value: Any) -> str:
    number = extract.num(value)
    return f"0x{int(number):x}" if number is not None and number >= 0 else ""


def memory_time(ctx: dict[str, Any]) -> dict[str, Any]:
    """Live memory over time per process, and the sites holding the peak."""
    perf = ctx["performance"]
    peak = extract.pick(perf, "peak_attribution", default={})
    holders = extract.sites(extract.pick(peak, "holders"), "blocks", "bytes")
    for row, raw in zip(holders, extract.rows_of(extract.pick(peak, "holders")), strict=True):
        row["share"] = extract.num(raw.get("percentage_of_peak"))
    t0 = ctx["span"][0]
    largest = []
    for r in extract.rows_of(extract.pick(ctx["memory"], "largest_live_allocations")):
        ts = extract.num(r.get("allocation_time_ns"))
        function, where = extract.split_location(extract.location_of(r))
        largest.append(
            {
                "size": extract.num(r.get("size_bytes")),
                "address": _hex(r.get("address")),
                "pid": extract.clean_text(r.get("pid")),
                "tid": extract.clean_text(r.get("tid")),
                "function": function,
                "where": where,
                "t_s": None if ts is None else (ts - t0) / 1e9,
            }
        )
    timeline = charts.memory_timeline(ctx["series"], CHART_WIDTH, 280, peaks=ctx["peaks"])
    items = [
        chart("memory-over-time", timeline),
        table(
            "peak-holders",
            "What held memory at the peak",
            [
                ("function", "function", "text"),
                ("where", "file:line", "text"),
                ("pid", "pid", "text"),
                ("count", "blocks", "count"),
                ("bytes", "bytes", "bytes"),
                ("share", "of peak", "percent"),
                ("trace", "stack", "text"),
            ],
            holders,
            sort="bytes",
        ),
        table(
            "largest-live",
            "Largest blocks alive at the end",
            [
                ("size", "size", "bytes"),
                ("function", "function", "text"),
                ("where", "file:line", "text"),
                ("pid", "pid", "text"),
                ("tid", "thread", "text"),
                ("t_s", "allocated", "seconds"),
                ("address", "address", "text"),
            ],
            largest,
            sort="size",
        ),
    ]
    return panel("memory", "Memory over time", ("memory_analysis",), ctx, items)


def types_panel(ctx: dict[str, Any]) -> dict[str, Any]:
    """The category -> type treemap and the type table."""
    rows = [dict(t, variables=", ".join(t["variables"][:12])) for t in ctx["types"]]
    items = [
        chart(
            "type-treemap",
            treemap.type_treemap(ctx["types"], CHART_WIDTH, 420),
            ("types", "name", "Click a type to filter the table below."),
        ),
        table(
            "types",
            "Types",
            [
                ("category", "category", "text"),
                ("subcategory", "subcategory", "text"),
                ("type_name", "type", "text"),
                ("count", "objects", "count"),
                ("bytes", "size", "bytes"),
                ("deep_bytes", "deep size", "bytes"),
                ("variables", "tracked variables", "text"),
            ],
            rows,
            sort="bytes",
        ),
    ]
    return panel("types", "Types", ("memory_analysis",), ctx, items)


def variables_panel(ctx: dict[str, Any]) -> dict[str, Any]:
    """Tracked variables, their lifetimes, scopes and links."""
    life = ctx["lifetime"]
    variables = ctx["variables"]
    t0, end = ctx["span"]
    ends = [v["died_s"] or v["created_s"] or 0 for v in variables]
    end_s = max([(end - t0) / 1e9 if end is not None else 0.0, *ends, 0.0])
    items: list[Item] = [
        chart(
            "lifetimes",
            charts.lifetimes(variables, end_s, CHART_WIDTH - 300),
            ("variables", "name", "Click a bar to find the variable below."),
        )
    ]
    items.append(
        table(
            "variables",
            "Tracked variables",
            [
                ("name", "name", "text"),
                ("type_name", "type", "text"),
                ("scope", "scope", "text"),
                ("size", "size", "bytes"),
                ("deep_size", "deep size", "bytes"),
                ("pid", "pid", "text"),
                ("tid", "thread", "text"),
                ("created_s", "created", "seconds"),
                ("died_s", "died", "seconds"),
                ("lifetime_ns", "lifetime", "duration_ns"),
            ],
            variables,
            sort="size",
        )
    )
    items.append(
        table(
            "scopes",
            "Scopes",
            [
                ("scope", "scope", "text"),
                ("pid", "pid", "text"),
                ("tid", "thread", "text"),
                ("variable_count", "variables", "count"),
                ("total_size", "size", "bytes"),
                ("deep_size", "deep size", "bytes"),
                ("alive_at_end", "alive at end", "count"),
                ("start_s", "entered", "seconds"),
                ("duration_ns", "duration", "duration_ns"),
            ],
            extract.scopes(life, t0),
            sort="total_size",
        )
    )
    items.append(
        table(
            "links",
            "Aliases and containment",
            [("kind", "relation", "text"), ("a", "variable", "text"), ("b", "other", "text")],
            extract.links(life),
        )
    )
    return panel("variables", "Variables & lifecycle", ("lifetime",), ctx, items)
