"""Altair chart builders shared by the SVG report and the dashboard.

Each function takes rows from :mod:`memscope.exporters.extract` and returns an Altair chart;
composing (``|``, ``&``, ``+``) and rendering happen in the exporters. Traced strings only ever
travel as data values (Vega escapes them when it draws); titles and expressions are fixed text.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import altair as alt

from memscope.exporters.extract import METRICS
from memscope.exporters.formatting import human_bytes, human_count, shorten

CATEGORIES = (
    "Collections",
    "Text",
    "Numbers",
    "Objects",
    "Arrays/Buffers",
    "Callables",
    "Modules and Code",
    "Other",
)
PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#9D755D", "#79706E")
INK, MUTED, CARD, LINE = "#1f2937", "#6b7280", "#f8fafc", "#e5e7eb"

#: A Vega expression that prints ``datum.value`` (bytes) as B / KiB / MiB / GiB.
BYTES_EXPR = (
    "abs(datum.value) >= 1073741824 ? format(datum.value / 1073741824, '.3~r') + ' GiB' : "
    "abs(datum.value) >= 1048576 ? format(datum.value / 1048576, '.3~r') + ' MiB' : "
    "abs(datum.value) >= 1024 ? format(datum.value / 1024, '.3~r') + ' KiB' : "
    "format(datum.value, 'd') + ' B'"
)


def byte_ticks(top: float, count: int = 6) -> list[int]:
    """Axis ticks at multiples of the power of two nearest to ``top / count``."""
    if top <= 0:
        return [0]
    step = 2 ** max(0, round(math.log2(max(1.0, top / count))))
    return [i * step for i in range(int(top // step) + 1)]


def bytes_axis(top: float, title: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Encoding arguments for a bytes axis with binary ticks up to ``top``."""
    if not math.isfinite(top) or top > 2.0**62:  # absurd input: let Vega pick the ticks
        return {"title": title, "axis": alt.Axis(labelExpr=BYTES_EXPR, **kwargs)}
    return {
        "title": title,
        "axis": alt.Axis(labelExpr=BYTES_EXPR, values=byte_ticks(top), **kwargs),
        "scale": alt.Scale(domain=[0, top]),
    }


def time_unit(span_s: float) -> tuple[float, str]:
    """(factor, unit) to show times of a run lasting ``span_s`` seconds in readable numbers."""
    if span_s < 2e-3:
        return 1e6, "µs"
    if span_s < 2.0:
        return 1e3, "ms"
    if span_s < 600:
        return 1.0, "s"
    return 1 / 60, "min"


def _in_unit(rows: list[dict[str, Any]], *fields: str) -> tuple[list[dict[str, Any]], str]:
    """Copies of ``rows`` with ``<field>_u`` = the field in a readable unit; and the unit."""
    span = max((abs(r[f]) for r in rows for f in fields if r.get(f) is not None), default=0.0)
    factor, unit = time_unit(span)
    out = [
        dict(r, **{f"{f}_u": None if r.get(f) is None else r[f] * factor for f in fields})
        for r in rows
    ]
    return out, unit


def category_hex(category: str) -> str:
    """The fixed colour of one category."""
    return dict(zip(CATEGORIES, PALETTE, strict=True)).get(category, PALETTE[-1])


def category_color(present: list[str] | None = None) -> alt.Scale:
    """The category -> colour scale, with the domain limited to the categories ``present``.

    Colours are fixed per category (so every chart agrees); unknown categories get the
    'Other' grey.
    """
    colors = dict(zip(CATEGORIES, PALETTE, strict=True))
    if present is None:
        domain = list(CATEGORIES)
    else:
        seen = set(present)
        domain = [c for c in CATEGORIES if c in seen]
        domain += sorted(c for c in seen if c not in colors)
    return alt.Scale(domain=domain, range=[colors.get(c, PALETTE[-1]) for c in domain])


def _data(rows: list[dict[str, Any]]) -> alt.Data:
    """Inline data, as a tuple.

    Altair's composition operators deep-copy lists (every row, each time charts are layered
    or concatenated) but pass tuples through.
    """
    return alt.Data(values=tuple(rows))


def placeholder(title: str, message: str, width: int, height: int = 60) -> Any:
    """A titled box saying why a chart has no data ("not measured: ...")."""
    return (
        alt.Chart(_data([{"m": shorten(message, int((width - 10) / 7.5))}]), title=title)
        .mark_text(color=MUTED, fontSize=13, fontStyle="italic")
        .encode(text="m:N")
        .properties(width=width, height=height)
    )


def metric_text(unit: str, value: Any) -> str:
    """A metric value in its unit, human-readable; ``None`` -> "not measured"."""
    if value is None:
        return "not measured"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "ratio":
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return human_count(value)


def metric_note(key: str, default: str, stats: dict[str, Any], processes: int = 1) -> str:
    """The small line under a metric: a measured context where there is one.

    With several ``processes`` the peak is that of their sum, said so (each process's own
    peak is marked on the memory chart).
    """
    if key == "peak_memory" and processes > 1:
        return f"all {processes} processes together"
    if key == "active_allocations" and stats.get("total_allocations") is not None:
        return f"of {human_count(stats['total_allocations'])} made"
    if key == "peak_memory" and stats.get("total_allocated") is not None:
        return f"{human_bytes(stats['total_allocated'])} allocated in all"
    if key == "allocation_density":
        made, tracked = stats.get("total_allocations"), stats.get("tracked_variables")
        if made is not None and tracked:
            return "allocations per\ntracked variable"
        return "allocations per tracked\nvariable (none tracked)" if tracked == 0 else default
    return default


def metric_cards(stats: dict[str, Any], width: int = 1180, processes: int = 1) -> Any:
    """Eight metric cards in one row: label, value (human-readable) and a short note."""
    gap = 10
    card_w = (width - gap * (len(METRICS) - 1)) / len(METRICS)
    rows = []
    for i, (key, label, unit, default_note) in enumerate(METRICS):
        text = metric_text(unit, stats.get(key))
        note = metric_note(key, default_note, stats, processes)
        left = i * (card_w + gap)
        rows.append(
            {
                "key": key,
                "label": label.upper(),
                "value": text,
                "note": note,
                "x": left,
                "x2": left + card_w,
                "xa": left + 5,
                "xt": left + 14,
                "y0": 0,
                "y1": 96,
                "ya0": 16,
                "ya1": 80,
                "yl": 24,
                "yv": 48,
                "yn": 64,
                "measured": text != "not measured",
            }
        )
    x_scale = alt.Scale(domain=[0, width])
    y_scale = alt.Scale(domain=[0, 96], reverse=True)

    def x(field: str) -> alt.X:
        return alt.X(field, scale=x_scale, axis=None)

    def y(field: str) -> alt.Y:
        return alt.Y(field, scale=y_scale, axis=None)

    base = alt.Chart(_data(rows))
    rect = base.mark_rect(cornerRadius=8, fill=CARD, stroke=LINE, strokeWidth=1).encode(
        x=x("x:Q"), x2="x2:Q", y=y("y0:Q"), y2="y1:Q"
    )
    accent = base.mark_rect(cornerRadius=2).encode(
        x=x("x:Q"),
        x2="xa:Q",
        y=y("ya0:Q"),
        y2="ya1:Q",
        color=alt.condition("datum.measured", alt.value("#4C78A8"), alt.value(LINE)),
    )
    label = base.mark_text(
        fontSize=10, fontWeight="bold", color=MUTED, align="left", baseline="middle"
    ).encode(x=x("xt:Q"), y=y("yl:Q"), text="label:N")
    value = (
        base.transform_filter("datum.measured")
        .mark_text(
            fontSize=19,
            fontWeight="bold",
            align="left",
            baseline="middle",
            color=INK,
        )
        .encode(x=x("xt:Q"), y=y("yv:Q"), text="value:N")
    )
    missing = (
        base.transform_filter("!datum.measured")
        .mark_text(
            fontSize=13,
            fontStyle="italic",
            align="left",
            baseline="middle",
            color=MUTED,
        )
        .encode(x=x("xt:Q"), y=y("yv:Q"), text="value:N")
    )
    note = base.mark_text(
        fontSize=10,
        color=MUTED,
        align="left",
        baseline="top",
        lineBreak="\n",
        lineHeight=12,
        limit=card_w - 18,
    ).encode(x=x("xt:Q"), y=y("yn:Q"), text="note:N")
    return alt.layer(rect, accent, label, value, missing, note).properties(width=width, height=96)


#: Most points one series (one process's line) sends to Vega; longer ones are reduced.
MAX_SERIES_POINTS = 400


def cap_series(
    rows: list[dict[str, Any]],
    value: str = "bytes",
    key: str = "pid",
    limit: int = MAX_SERIES_POINTS,
) -> list[dict[str, Any]]:
    """``rows`` with each ``key`` group cut to about ``limit`` points, peaks and dips kept.

    Rows are sorted by (key, t_s). A longer group is cut into ``limit // 2`` time bins, and
    each bin keeps its lowest and highest point (in time order), so the line still reaches
    every maximum and minimum; the first and last points are always kept.
    """
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r[key]].append(r)
    out: list[dict[str, Any]] = []
    for group in groups.values():
        group.sort(key=lambda r: r["t_s"])
        if len(group) <= limit:
            out += group
            continue
        bins = max(1, limit // 2 - 1)
        lo_t, hi_t = group[0]["t_s"], group[-1]["t_s"]
        width = (hi_t - lo_t) / bins or 1.0
        chosen: dict[int, tuple[int, int]] = {}
        for i, r in enumerate(group):
            b = min(bins - 1, int((r["t_s"] - lo_t) / width))
            lo, hi = chosen.get(b, (i, i))
            if r[value] < group[lo][value]:
                lo = i
            if r[value] > group[hi][value]:
                hi = i
            chosen[b] = (lo, hi)
        keep = {0, len(group) - 1} | {i for pair in chosen.values() for i in pair}
        out += [group[i] for i in sorted(keep)]
    return out


def with_peaks(series: list[dict[str, Any]], peaks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``series`` with each process's measured peak inserted as a point of its line.

    The series holds live bytes at bucket ends; the peak (an exact maximum at a known time)
    usually falls between two of them, so without it the line would miss the peak.
    """
    pids = {r["pid"] for r in series}
    extra = [
        {"pid": p["pid"], "t_s": p["t_s"], "bytes": p["bytes"]} for p in peaks if p["pid"] in pids
    ]
    return sorted(series + extra, key=lambda r: (r["pid"], r["t_s"]))


def memory_timeline(
    series: list[dict[str, Any]],
    width: int = 1180,
    height: int = 220,
    peaks: list[dict[str, Any]] | None = None,
) -> Any:
    """Active memory over time, one line per process, each process's measured peak marked.

    ``peaks`` (from :func:`memscope.exporters.extract.process_peaks`) are the analyzer's exact
    per-process peaks; they are drawn on the line and labelled. Without them the highest
    sample is marked and labelled as such.
    """
    title = "Memory over time (active bytes per process)"
    if not series:
        return placeholder(title, "not measured: no memory_over_time in the analysis", width)
    pids = {r["pid"] for r in series}
    marks = [dict(p) for p in peaks or [] if p["pid"] in pids]
    series = cap_series(series)
    if marks:
        series = with_peaks(series, marks)
        for m in marks:
            m["label"] = f"peak {human_bytes(m['bytes'])}" + (
                f" (process {m['pid']})" if len(pids) > 1 else ""
            )
    else:
        top = max(series, key=lambda r: r["bytes"])
        marks = [dict(top, label=f"highest sample {human_bytes(top['bytes'])}")]
    both, unit = _in_unit(series + marks, "t_s")
    series, marks = both[: len(series)], both[len(series) :]
    top_bytes = max(r["bytes"] for r in series + marks)
    data = _data(series)
    line = (
        alt.Chart(data, title=title)
        .mark_area(line={"strokeWidth": 2}, opacity=0.18, interpolate="step-after")
        .encode(
            x=alt.X("t_s_u:Q", title=f"time since start ({unit})", scale=alt.Scale(nice=False)),
            y=alt.Y(
                "bytes:Q", stack=None, **bytes_axis(max(1.0, top_bytes * 1.08), "active memory")
            ),
            color=alt.Color(
                "pid:N",
                title="process",
                legend=alt.Legend(
                    orient="top",
                    direction="horizontal",
                    symbolOpacity=1,
                    symbolType="stroke",
                    symbolStrokeWidth=3,
                ),
            ),
            tooltip=[
                alt.Tooltip("pid:N", title="process"),
                alt.Tooltip("t_s_u:Q", format=".3f", title=unit),
                alt.Tooltip("bytes:Q", format=",", title="bytes"),
            ],
        )
    )
    t_end = max(r["t_s_u"] for r in series)
    marks.sort(key=lambda m: -m["bytes"])
    for m in marks:
        m["late"] = m["t_s_u"] > 0.6 * t_end
    # a peak near the floor would write over the axis: only the point (and tooltip) is drawn
    labelled = [m for m in marks[:3] if m["bytes"] >= 0.08 * top_bytes]
    point = (
        alt.Chart(_data(marks))
        .mark_point(color="#E45756", filled=True, size=60)
        .encode(
            x="t_s_u:Q",
            y="bytes:Q",
            tooltip=[
                alt.Tooltip("label:N", title="measured peak"),
                alt.Tooltip("t_s_u:Q", format=".3f", title=unit),
            ],
        )
    )
    labels = [
        alt.Chart(_data([m for m in labelled if m["late"] == late]))
        .mark_text(
            color="#E45756",
            align="right" if late else "left",
            dx=-8 if late else 8,
            dy=-6,
            fontWeight="bold",
        )
        .encode(x="t_s_u:Q", y="bytes:Q", text="label:N")
        for late in (False, True)
        if any(m["late"] == late for m in labelled)
    ]  # no empty layer (Vega warns)
    return alt.layer(line, point, *labels).properties(width=width, height=height)


def size_distribution(buckets: list[dict[str, Any]], width: int = 560, height: int = 220) -> Any:
    """How many allocations fall in each size bucket."""
    title = "Allocation size distribution"
    if not buckets:
        return placeholder(title, "not measured: no allocation_distribution", width)
    rows = [
        dict(
            b,
            order=i,
            count_text=human_count(b["count"]),
            bytes_text=human_bytes(b["bytes"]) if b["bytes"] is not None else "",
        )
        for i, b in enumerate(buckets)
    ]
    base = alt.Chart(_data(rows), title=title).encode(
        x=alt.X("label:N", sort=None, title="allocation size", axis=alt.Axis(labelAngle=-35)),
        y=alt.Y("count:Q", title="allocations", axis=alt.Axis(format="~s")),
    )
    bars = base.mark_bar(color="#4C78A8", cornerRadiusTopLeft=3, cornerRadiusTopRight=3).encode(
        tooltip=[
            alt.Tooltip("label:N", title="size"),
            alt.Tooltip("count:Q", format=","),
            alt.Tooltip("bytes_text:N", title="bytes"),
        ]
    )
    text = base.mark_text(dy=-6, fontSize=9, color=INK).encode(text="count_text:N")
    return (bars + text).properties(width=width, height=height)


def variables_by_category(
    variables: list[dict[str, Any]], width: int = 560, height: int = 220
) -> Any:
    """Tracked variables grouped by category: bytes per category, with names."""
    title = "Tracked variables by category"
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in variables:
        if v["size"] is not None:
            groups[v["category"] or "Other"].append(v)
    if not groups:
        return placeholder(title, "not measured: no tracked variables", width)
    rows = []
    for cat, vs in groups.items():
        vs.sort(key=lambda v: -v["size"])
        total = sum(v["size"] for v in vs)
        head = f"{human_bytes(total)} · {len(vs)} vars: "
        # texts are cut here, by characters, rather than measured by Vega (a `limit` costs)
        room = max(12, int(width * 0.56 / 6.0) - len(head))
        rows.append(
            {
                "category": cat,
                "bytes": total,
                "label": head + name_list([v["name"] for v in vs], room),
            }
        )
    base = alt.Chart(_data(rows), title=title).encode(
        y=alt.Y("category:N", sort="-x", title=None),
        x=alt.X("bytes:Q", **bytes_axis(max(r["bytes"] for r in rows) * 2.4, "bytes (shallow)")),
    )
    bars = base.mark_bar(cornerRadiusEnd=3).encode(
        color=alt.Color("category:N", scale=category_color(list(groups)), legend=None),
        tooltip=[alt.Tooltip("category:N"), alt.Tooltip("label:N", title="variables")],
    )
    text = base.mark_text(align="left", dx=4, fontSize=10, color=INK).encode(text="label:N")
    return (bars + text).properties(width=width, height=height)


def name_list(names: list[str], room: int) -> str:
    """As many whole names as fit ``room`` characters, then ``+N more``."""
    shown: list[str] = []
    for i, name in enumerate(names):
        more = f" +{len(names) - i} more"
        text = ", ".join([*shown, name])
        tail = f" +{len(names) - i - 1} more" if i < len(names) - 1 else ""
        if len(text) + len(tail) > room:
            if not shown:
                return shorten(name, max(4, room - len(more))) + (
                    f" +{len(names) - 1} more" if len(names) > 1 else ""
                )
            return ", ".join(shown) + more
        shown.append(name)
    return ", ".join(shown)


def top_sites(
    sites: list[dict[str, Any]],
    width: int = 560,
    height: int = 220,
    limit: int = 10,
    title: str = "Top allocation sites (by bytes)",
) -> Any:
    """The allocation sites that allocated the most bytes (stacks ending at one line merged)."""
    merged: dict[str, dict[str, Any]] = {}
    for s in sites:
        if s["bytes"] is None:
            continue
        m = merged.setdefault(s["location"], dict(s, bytes=0, count=0))
        m["bytes"] += s["bytes"]
        m["count"] = None if s["count"] is None or m["count"] is None else m["count"] + s["count"]
    rows = sorted(merged.values(), key=lambda s: -s["bytes"])[:limit]
    if not rows:
        return placeholder(title, "not measured: no allocation sites", width)
    data = []
    labels = unique_labels([s["location"] for s in rows], 44)
    for rank, (s, site) in enumerate(zip(rows, labels, strict=True)):
        label = human_bytes(s["bytes"])
        if s["count"] is not None:
            label += f" · {human_count(s['count'])} allocs"
        data.append(
            {
                "rank": rank,
                "site": site,
                "location": s["location"],
                "bytes": s["bytes"],
                "label": label,
                "trace": s["trace"],
            }
        )
    base = alt.Chart(_data(data), title=title).encode(
        y=alt.Y("rank:O", title=None, axis=None),
        x=alt.X("bytes:Q", **bytes_axis(max(r["bytes"] for r in data) * 1.8, "bytes allocated")),
    )
    bars = base.mark_bar(color="#F58518", cornerRadiusEnd=3).encode(
        tooltip=[
            alt.Tooltip("location:N", title="site"),
            alt.Tooltip("label:N", title="allocated"),
            alt.Tooltip("trace:N", title="stack"),
        ]
    )
    text = base.mark_text(align="left", dx=4, fontSize=10, color=INK).encode(text="label:N")
    return (bars + text + row_labels(base, "site")).properties(width=width - 210, height=height)


def unique_labels(texts: list[str], limit: int) -> list[str]:
    """``texts`` shortened to ``limit`` characters, a ``#n`` added where two would read alike."""
    seen: dict[str, int] = {}
    out = []
    for text in texts:
        short = shorten(text, limit)
        seen[short] = seen.get(short, 0) + 1
        out.append(short if seen[short] == 1 else f"{shorten(text, limit - 4)} #{seen[short]}")
    return out


def row_labels(base: alt.Chart, field: str) -> alt.Chart:
    """Row labels left of a bar chart whose y is a rank (so equal texts never share a band).

    The texts come shortened by character count (no Vega ``limit``: measuring is slow).
    """
    return base.mark_text(align="right", baseline="middle", dx=-6, fontSize=10, color=MUTED).encode(
        x=alt.value(0), text=f"{field}:N"
    )


def summary(lines: list[tuple[str, str]], width: int = 560) -> Any:
    """A two-column text box of (label, value) lines."""
    rows = [{"i": i, "k": k, "v": v} for i, (k, v) in enumerate(lines)]
    height = max(60, 20 * len(rows))
    base = alt.Chart(_data(rows), title="Summary").encode(
        y=alt.Y("i:O", axis=None),
    )
    keys = base.mark_text(align="left", color=MUTED, fontSize=12).encode(x=alt.value(0), text="k:N")
    values = base.mark_text(align="left", color=INK, fontSize=12, fontWeight="bold").encode(
        x=alt.value(210), text="v:N"
    )
    return (keys + values).properties(width=width, height=height)


def theme_config() -> dict[str, Any]:
    """Fonts and colours shared by every rendering."""
    return {
        "font": "DejaVu Sans, Helvetica, Arial, sans-serif",
        "view": {"stroke": None},
        "title": {"fontSize": 15, "anchor": "start", "color": INK, "offset": 10},
        "axis": {
            "labelColor": MUTED,
            "titleColor": MUTED,
            "gridColor": "#eef0f3",
            "domainColor": LINE,
            "tickColor": LINE,
            "labelFontSize": 10,
        },
        "legend": {"labelColor": INK, "titleColor": MUTED},
        "background": "white",
        "padding": 20,
        "concat": {"spacing": 36},
    }


def shorten_value(text: str, limit: int = 70) -> str:
    """Long names cut in the middle so one line stays one line."""
    return shorten(text, limit)


def banner(messages: list[str], width: int) -> Any:
    """A red-bordered box with one line per problem, across the top of a page."""
    height = 14 + 20 * len(messages)
    rows = [
        {
            "x": 0,
            "x2": width,
            "y": 0,
            "y2": height,
            "i": i,
            "yt": 17 + 20 * i,
            "m": "⚠ " + shorten(m, min(170, int((width - 24) / 7))),
        }
        for i, m in enumerate(messages)
    ]
    scale_x = alt.Scale(domain=[0, width])
    scale_y = alt.Scale(domain=[0, height], reverse=True)
    base = alt.Chart(_data(rows))
    box = (
        base.transform_filter("datum.i == 0")
        .mark_rect(fill="#fef2f2", stroke="#ef4444", cornerRadius=6)
        .encode(
            x=alt.X("x:Q", scale=scale_x, axis=None),
            x2="x2:Q",
            y=alt.Y("y:Q", scale=scale_y, axis=None),
            y2="y2:Q",
        )
    )
    text = base.mark_text(
        align="left", baseline="middle", color="#991b1b", fontSize=12, dx=12
    ).encode(
        x=alt.X("x:Q", scale=scale_x, axis=None),
        y=alt.Y("yt:Q", scale=scale_y, axis=None),
        text="m:N",
    )
    return (box + text).properties(width=width, height=height)


def lifetimes(
    variables: list[dict[str, Any]], end_s: float, width: int = 1100, limit: int = 150
) -> Any:
    """Gantt-style lifetimes of tracked variables (the ``limit`` largest), coloured by scope."""
    title = "Variable lifetimes (creation → death; open bars were alive at the end)"
    timed = [v for v in variables if v["created_s"] is not None]
    if not timed:
        return placeholder(title, "not measured: no tracked variables with a creation time", width)
    shown = sorted(timed, key=lambda v: -(v["size"] or 0))[:limit]
    shown.sort(key=lambda v: v["created_s"])
    seen: dict[str, int] = {}
    rows = []
    for v in shown:
        label = shorten(f"{v['name']} · {v['scope']}", 48)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} #{seen[label]}"
        rows.append(
            {
                "label": label,
                "name": v["name"],
                "scope": v["scope"],
                "type": v["type_name"],
                "start": v["created_s"],
                "end": v["died_s"] if v["died_s"] is not None else end_s,
                "alive": v["died_s"] is None,
                "size": human_bytes(v["size"]),
            }
        )
    if len(timed) > limit:
        title += f" — the {limit} largest of {len(timed)} are drawn"
    # the axis starts at the first creation: interpreter start-up would squeeze the bars
    first = min(r["start"] for r in rows)
    rows, unit = _in_unit([dict(r, first=first) for r in rows], "start", "end", "first")
    scale = alt.Scale(
        domain=[rows[0]["first_u"], max(r["end_u"] for r in rows)], nice=False, zero=False
    )
    base = alt.Chart(_data(rows), title=title)
    legend = alt.Legend(orient="top", columns=6, labelLimit=160)
    bars = base.mark_bar(cornerRadius=2, height=9).encode(
        y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
        x=alt.X(
            "start_u:Q",
            scale=scale,
            title=f"time since start ({unit}; the axis starts at the first tracked variable)",
        ),
        x2="end_u:Q",
        color=alt.Color("scope:N", legend=legend),
        opacity=alt.condition("datum.alive", alt.value(0.55), alt.value(0.95)),
        tooltip=[
            alt.Tooltip("name:N"),
            alt.Tooltip("type:N"),
            alt.Tooltip("scope:N"),
            alt.Tooltip("size:N"),
            alt.Tooltip("start_u:Q", format=".3f", title=unit),
            alt.Tooltip("end_u:Q", format=".3f", title=f"end ({unit})"),
            alt.Tooltip("alive:N"),
        ],
    )
    # a tick at each creation keeps variables that lived a few microseconds visible
    ticks = base.mark_tick(thickness=2, size=11).encode(
        y=alt.Y("label:N", sort=None),
        x=alt.X("start_u:Q", scale=scale),
        color=alt.Color("scope:N", legend=legend),
    )
    return (bars + ticks).properties(width=width, height=max(60, 13 * len(rows)))


def rates(rows: list[dict[str, Any]], width: int = 1100, height: int = 200) -> Any:
    """Allocation and free rates over time, per process."""
    title = "Allocation and free rates over time"
    if not rows:
        return placeholder(title, "not measured: no rates in the performance analysis", width)
    rows, unit = _in_unit(cap_series(rows, value="value", key="series"), "t_s")
    return (
        alt.Chart(_data(rows), title=title)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("t_s_u:Q", title=f"time since start ({unit})", scale=alt.Scale(nice=False)),
            y=alt.Y("value:Q", title="events per second", axis=alt.Axis(format="~s")),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top")),
            strokeDash=alt.StrokeDash("what:N", title=None),
            tooltip=[
                alt.Tooltip("series:N"),
                alt.Tooltip("t_s_u:Q", format=".3f", title=unit),
                alt.Tooltip("value:Q", format=",.0f"),
            ],
        )
        .properties(width=width, height=height)
    )


def ranked_bars(
    rows: list[dict[str, Any]], title: str, width: int = 1100, color: str = "#54A24B"
) -> Any:
    """Horizontal bars of ``{name, bytes, label}`` rows in the given order (one band each)."""
    if not rows:
        return placeholder(title, "not measured", width)
    names = unique_labels([r["name"] for r in rows], 48)
    data = [
        dict(r, rank=i, full_name=r["name"], name=n)
        for i, (r, n) in enumerate(zip(rows, names, strict=True))
    ]
    base = alt.Chart(_data(data), title=title).encode(
        y=alt.Y("rank:O", title=None, axis=None),
        x=alt.X("bytes:Q", **bytes_axis(max(r["bytes"] for r in data) * 1.35, "bytes")),
    )
    bars = base.mark_bar(color=color, cornerRadiusEnd=3).encode(
        tooltip=[alt.Tooltip("full_name:N", title="name"), alt.Tooltip("label:N", title="size")]
    )
    text = base.mark_text(align="left", dx=4, fontSize=10, color=INK).encode(text="label:N")
    return (bars + text + row_labels(base, "name")).properties(
        width=width, height=max(60, 20 * len(data))
    )
