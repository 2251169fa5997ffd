"""``lifecycle_timeline.svg``: each scope's tracked variables as lifetime bars on one time axis.

Scopes are boxes stacked top to bottom in order of first activity; inside, one row per variable
(name, type, size with a meter relative to the largest variable of the scope) and a bar from its
creation to its death (or to the end of the run, drawn open, when it was still alive). Alias and
containment links join rows in a gutter. Past :data:`MAX_ROWS_PER_SCOPE` rows a scope shows its
largest variables and one summary row with a band of how many of the rest were alive over time;
past :data:`MAX_SCOPES` the smallest scopes are folded into one line. Every elision is written
in the picture. Built with ElementTree, so every traced string is escaped as XML text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from memscope.exporters import extract
from memscope.exporters.charts import INK, LINE, MUTED, category_hex
from memscope.exporters.formatting import human_bytes, human_count, human_duration_ns, shorten
from memscope.exporters.report_files import Reports, report

MAX_ROWS_PER_SCOPE = 12
MAX_SCOPES = 10
WIDTH = 1200
LABEL_W = 400
GUTTER = 46
RIGHT = 30
ROW_H = 22
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
SVG_NS = "http://www.w3.org/2000/svg"


@dataclass
class ScopeView:
    """One scope box: the rows shown and what was left out."""

    name: str
    pid: str
    variables: list[dict[str, Any]]
    hidden: list[dict[str, Any]] = field(default_factory=list)
    #: When the scope ran (enter, exit-or-None), from the lifetime analysis.
    spans: list[tuple[float, float | None]] = field(default_factory=list)


@dataclass
class TimelineView:
    """Everything the timeline draws."""

    scopes: list[ScopeView]
    hidden_scopes: list[ScopeView]
    links: list[dict[str, str]]
    end_s: float
    #: Where the time axis starts: the first tracked-variable or scope event (seconds since
    #: the run's start), so interpreter start-up does not squeeze the picture.
    start_s: float
    untimed: int
    problems: dict[str, str]


def _group(variables: list[dict[str, Any]]) -> list[ScopeView]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for v in variables:
        groups.setdefault((v["scope"], v["pid"]), []).append(v)
    out = []
    for (name, pid), vs in groups.items():
        vs.sort(key=lambda v: -(v["size"] or 0))
        shown = sorted(vs[:MAX_ROWS_PER_SCOPE], key=lambda v: v["created_s"])
        out.append(ScopeView(name, pid, shown, vs[MAX_ROWS_PER_SCOPE:]))
    out.sort(key=lambda s: min(v["created_s"] for v in s.variables + s.hidden))
    return out


class LifecycleTimelineSvg:
    """Exporter of ``lifecycle_timeline.svg``."""

    name = "lifecycle timeline SVG"
    filename = "lifecycle_timeline.svg"

    def build(self, reports: Reports) -> TimelineView:
        """Group the tracked variables by scope and choose what fits."""
        life, mem = report(reports, "lifetime"), report(reports, "memory_analysis")
        t0, end = extract.run_span(reports)
        variables = extract.variables(mem, life, t0)
        timed = [v for v in variables if v["created_s"] is not None]
        ends = [v["died_s"] or v["created_s"] for v in timed]
        end_s = max([(end - t0) / 1e9 if end is not None else 0.0, *ends, 1e-9])
        scopes = _group(timed)
        if len(scopes) > MAX_SCOPES:
            scopes.sort(key=lambda s: -sum(v["size"] or 0 for v in s.variables + s.hidden))
            kept, hidden = scopes[:MAX_SCOPES], scopes[MAX_SCOPES:]
            kept.sort(key=lambda s: min(v["created_s"] for v in s.variables + s.hidden))
        else:
            kept, hidden = scopes, []
        spans: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
        for s in extract.scopes(life, t0):
            if s["start_s"] is not None:
                spans.setdefault((s["scope"], s["pid"]), []).append((s["start_s"], s["end_s"]))
        for scope in kept:
            scope.spans = sorted(spans.get((scope.name, scope.pid), []))
        firsts = [v["created_s"] for v in timed] + [
            enter for scope in kept for enter, _ in scope.spans
        ]
        start_s = min(firsts, default=0.0)
        end_s = max(end_s, start_s + 1e-9)
        probs = extract.problem_messages(reports)
        return TimelineView(
            scopes=kept,
            hidden_scopes=hidden,
            links=extract.links(life),
            end_s=end_s,
            start_s=start_s,
            untimed=len(variables) - len(timed),
            problems={k: v for k, v in probs.items() if k in ("lifetime", "memory_analysis")},
        )

    def render(self, obj: TimelineView, fileobj: BinaryIO) -> None:
        """Draw the timeline as SVG."""
        svg = _Drawing(obj).draw()
        ET.ElementTree(svg).write(fileobj, encoding="utf-8", xml_declaration=True)


def _tick_step(span: float) -> float:
    raw = span / 8
    step = 1e-9
    while step * 10 <= raw:
        step *= 10
    for mult in (1, 2, 5, 10):
        if step * mult >= raw:
            return step * mult
    return step * 10


class _Drawing:
    def __init__(self, view: TimelineView) -> None:
        self.view = view
        self.x0 = LABEL_W + GUTTER
        self.x1 = WIDTH - RIGHT
        self.svg = ET.Element(
            "svg", {"xmlns": SVG_NS, "width": str(WIDTH), "font-family": FONT, "role": "img"}
        )
        self.rows: dict[str, float] = {}  # variable key (pid:var_id) -> row centre y

    def x(self, t: float) -> float:
        v = self.view
        return self.x0 + (self.x1 - self.x0) * (max(t, v.start_s) - v.start_s) / (
            v.end_s - v.start_s
        )

    def ticks(self) -> list[float]:
        """Tick times (seconds since the run's start), every step from the axis start."""
        v = self.view
        step = _tick_step(v.end_s - v.start_s)
        out, i = [], 0
        while v.start_s + i * step <= v.end_s + (v.end_s - v.start_s) * 1e-4:
            out.append(v.start_s + i * step)
            i += 1
        return out

    def el(
        self, tag: str, parent: ET.Element | None = None, text: str | None = None, **attrs: Any
    ) -> ET.Element:
        node = ET.SubElement(
            self.svg if parent is None else parent,
            tag,
            {k.rstrip("_").replace("_", "-"): str(v) for k, v in attrs.items()},
        )
        if text is not None:
            node.text = text
        return node

    def draw(self) -> ET.Element:
        v = self.view
        self.el("rect", x=0, y=0, width=WIDTH, height="100%", fill="white")
        self.el(
            "text",
            x=24,
            y=38,
            text="memscope · lifecycle timeline",
            font_size=22,
            font_weight="bold",
            fill=INK,
        )
        n_vars = sum(len(s.variables) + len(s.hidden) for s in v.scopes + v.hidden_scopes)
        n_scopes = len(v.scopes) + len(v.hidden_scopes)
        self.el(
            "text",
            x=24,
            y=60,
            fill=INK,
            font_size=13,
            text=(
                f"{human_count(n_vars)} tracked variable(s) in {human_count(n_scopes)} scope(s); "
                f"the first appeared {human_duration_ns(v.start_s * 1e9)} into a run of "
                f"{human_duration_ns(v.end_s * 1e9)}."
            ),
        )
        self.el(
            "text",
            x=24,
            y=78,
            fill=MUTED,
            font_size=11.5,
            text=(
                "Bars run from creation to death (an arrow: still alive when the run ended). "
                "Meters: size relative to the largest variable of the scope. "
                "Grey line under a scope's title: when the scope ran."
            ),
        )
        y = 94.0
        for kind, message in sorted(v.problems.items()):
            self.el(
                "text", x=24, y=y + 12, fill="#b91c1c", font_size=12, text=f"⚠ {kind}: {message}"
            )
            y += 20
        if not n_vars:
            self.el(
                "text",
                x=24,
                y=y + 30,
                fill=MUTED,
                font_size=14,
                font_style="italic",
                text="not measured: no tracked variables with a creation time "
                "(track some with memscope.track_var(obj))",
            )
            return self._finish(y + 60)
        y = self._axis(y + 10)
        for scope in v.scopes:
            y = self._scope(scope, y + 10)
        y = self._footer(y + 14)
        self._links()
        return self._finish(y)

    def _finish(self, height: float) -> ET.Element:
        self.svg.set("height", f"{height + 20:.0f}")
        self.svg.set("viewBox", f"0 0 {WIDTH} {height + 20:.0f}")
        return self.svg

    def _axis(self, y: float) -> float:
        start = self.view.start_s
        self.el(
            "text",
            x=self.x0,
            y=y + 12,
            fill=MUTED,
            font_size=11,
            text=(
                "time since the first tracked variable or scope event "
                f"(the axis starts {human_duration_ns(start * 1e9)} into the run; "
                "start-up before it is left out)"
            ),
        )
        axis_y = y + 30
        self.el("line", x1=self.x0, x2=self.x1, y1=axis_y, y2=axis_y, stroke=MUTED)
        for t in self.ticks():
            self.el("line", x1=self.x(t), x2=self.x(t), y1=axis_y - 4, y2=axis_y, stroke=MUTED)
            self.el(
                "text",
                x=self.x(t),
                y=axis_y - 7,
                text="+" + human_duration_ns((t - start) * 1e9) if t > start else "0",
                fill=MUTED,
                font_size=10,
                text_anchor="middle",
            )
        return axis_y + 4

    def _scope(self, scope: ScopeView, y: float) -> float:
        every = scope.variables + scope.hidden
        total = sum(v["size"] or 0 for v in every)
        largest = max((v["size"] or 0 for v in every), default=0)
        rows = len(scope.variables) + (1 if scope.hidden else 0)
        height = 30 + rows * ROW_H + 8
        group = self.el("g", class_="scope")
        self.el(
            "rect",
            group,
            x=12,
            y=y,
            width=WIDTH - 24,
            height=height,
            rx=8,
            fill="#f8fafc",
            stroke=LINE,
        )
        self.el(
            "text",
            group,
            x=24,
            y=y + 20,
            font_size=13,
            font_weight="bold",
            fill=INK,
            text=shorten(f"scope {scope.name}", 60),
        )
        self.el(
            "text",
            group,
            x=self.x0,
            y=y + 18,
            font_size=11,
            fill=MUTED,
            text=(
                f"pid {scope.pid} · {human_count(len(every))} variable(s) · "
                f"{human_bytes(total)} · {_when(scope, every, self.view.end_s)}"
            ),
        )
        for enter, exit_ in scope.spans[:200]:
            stop = self.view.end_s if exit_ is None else exit_
            band = self.el(
                "rect",
                group,
                x=self.x(enter),
                y=y + 23,
                width=max(1.5, self.x(stop) - self.x(enter)),
                height=3,
                rx=1.5,
                fill="#94a3b8",
            )
            self.el(
                "title",
                band,
                text=f"scope {scope.name} ran {human_duration_ns(enter * 1e9)}"
                f" – {human_duration_ns(stop * 1e9)}",
            )
        self._grid(group, y + 28, y + height - 6)
        row_y = y + 30
        for var in scope.variables:
            self._row(group, var, row_y, largest)
            row_y += ROW_H
        if scope.hidden:
            self._hidden_row(group, scope.hidden, row_y)
        return y + height

    def _grid(self, parent: ET.Element, y1: float, y2: float) -> None:
        for t in self.ticks():
            self.el("line", parent, x1=self.x(t), x2=self.x(t), y1=y1, y2=y2, stroke="#eef0f3")

    def _row(self, parent: ET.Element, var: dict[str, Any], y: float, largest: float) -> None:
        mid = y + ROW_H / 2
        self.rows.setdefault(var["key"], mid)
        color = _color(var["category"])
        g = self.el("g", parent, class_="variable")
        life = (
            "alive at end"
            if var["lifetime_ns"] is None
            else f"lifetime {human_duration_ns(var['lifetime_ns'])}"
        )
        self.el(
            "title",
            g,
            text=f"{var['name']}: {var['type_name']}, {human_bytes(var['size'])}, {life}",
        )
        self.el(
            "text",
            g,
            x=24,
            y=mid + 4,
            font_size=11.5,
            fill=INK,
            font_weight="bold",
            text=shorten(var["name"], 20),
        )
        type_text = self.el(
            "text",
            g,
            x=178,
            y=mid + 4,
            font_size=10,
            fill=MUTED,
            text=clip_end(var["type_name"], 18),
        )
        self.el("title", type_text, text=var["type_name"])
        size = var["size"] or 0
        frac = size / largest if largest else 0
        meter_x = LABEL_W - 62
        self.el("rect", g, x=meter_x, y=mid - 3, width=56, height=6, rx=3, fill=LINE)
        self.el(
            "rect", g, x=meter_x, y=mid - 3, width=max(1.5, 56 * frac), height=6, rx=3, fill=color
        )
        self.el(
            "text",
            g,
            x=meter_x - 6,
            y=mid + 4,
            font_size=10,
            fill=INK,
            text_anchor="end",
            text=human_bytes(var["size"]),
        )
        start = self.x(var["created_s"])
        alive = var["died_s"] is None
        stop = self.x(self.view.end_s if alive else var["died_s"])
        self.el(
            "rect",
            g,
            x=start,
            y=mid - 6,
            width=max(2.0, stop - start),
            height=12,
            rx=3,
            fill=color,
            fill_opacity=0.35 + 0.6 * frac,
        )
        if alive:
            self.el("path", g, d=f"M{stop - 1:.1f},{mid - 8} l8,8 l-8,8 z", fill=color)
        else:
            label = human_duration_ns(var["lifetime_ns"])
            anchor_right = stop + 6 + 7 * len(label) < self.x1
            self.el(
                "text",
                g,
                x=stop + 6 if anchor_right else start - 6,
                y=mid + 4,
                font_size=9.5,
                fill=MUTED,
                text_anchor="start" if anchor_right else "end",
                text=label,
            )

    def _hidden_row(self, parent: ET.Element, hidden: list[dict[str, Any]], y: float) -> None:
        mid = y + ROW_H / 2
        total = sum(v["size"] or 0 for v in hidden)
        self.el(
            "text",
            parent,
            x=24,
            y=mid + 4,
            font_size=11,
            fill="#b45309",
            font_style="italic",
            text=(
                f"+ {human_count(len(hidden))} more variable(s), {human_bytes(total)} "
                f"(only the {MAX_ROWS_PER_SCOPE} largest are drawn)"
            ),
        )
        bins = 60
        counts = [0] * bins
        start, span = self.view.start_s, self.view.end_s - self.view.start_s
        for v in hidden:
            end = self.view.end_s if v["died_s"] is None else v["died_s"]
            first = int(bins * (v["created_s"] - start) / span)
            last = int(bins * (end - start) / span)
            for b in range(max(0, first), min(bins - 1, last) + 1):
                counts[b] += 1
        peak = max(counts) or 1
        width = (self.x1 - self.x0) / bins
        for b, c in enumerate(counts):
            if c:
                self.el(
                    "rect",
                    parent,
                    x=self.x0 + b * width,
                    y=mid - 6,
                    width=width + 0.3,
                    height=12,
                    fill="#b45309",
                    fill_opacity=0.12 + 0.6 * c / peak,
                )
        self.el("title", parent, text=f"{len(hidden)} variables alive over time (darker = more)")

    def _links(self) -> None:
        drawn = hidden = 0
        gx = LABEL_W + 8
        for i, link in enumerate(self.view.links):
            a, b = self.rows.get(link["a_key"]), self.rows.get(link["b_key"])
            if a is None or b is None or a == b:
                hidden += 1
                continue
            bend = gx + 10 + 18 * (abs(b - a) / 400 + (i % 3) * 0.3)
            dash = "4,3" if link["kind"] == "alias" else "none"
            color = "#7c3aed" if link["kind"] == "alias" else "#0f766e"
            path = self.el(
                "path",
                d=f"M{gx},{a:.1f} C{bend:.1f},{a:.1f} {bend:.1f},{b:.1f} {gx},{b:.1f}",
                fill="none",
                stroke=color,
                stroke_width=1.5,
                stroke_dasharray=dash,
            )
            self.el("title", path, text=f"{link['a']} {link['kind']} {link['b']}")
            drawn += 1
        self.link_counts = (drawn, hidden)

    def _footer(self, y: float) -> float:
        v = self.view
        lines = []
        if v.hidden_scopes:
            n = sum(len(s.variables) + len(s.hidden) for s in v.hidden_scopes)
            names = ", ".join(s.name for s in v.hidden_scopes[:5])
            lines.append(
                f"+ {len(v.hidden_scopes)} smaller scope(s) not drawn ({n} variables): "
                + shorten(names, 120)
            )
        if v.untimed:
            lines.append(f"{v.untimed} variable(s) have no creation time and are not drawn")
        if v.links:
            lines.append(
                f"Links: {len(v.links)} alias/containment relation(s); purple dashed = "
                "same object under two names, teal = container → contained; links to "
                "variables not drawn are left out"
            )
        for line in lines:
            self.el("text", x=24, y=y + 12, font_size=11.5, fill="#b45309", text=line)
            y += 18
        # Legend of categories present.
        x = 24.0
        seen = sorted({var["category"] or "Other" for s in v.scopes for var in s.variables})
        for cat in seen:
            self.el("rect", x=x, y=y + 10, width=12, height=12, rx=2, fill=_color(cat))
            self.el("text", x=x + 16, y=y + 20, font_size=11, fill=INK, text=cat)
            x += 26 + 7 * len(cat)
        return y + 30


def clip_end(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at the end, with an ellipsis (for type names)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(scope: ScopeView, every: list[dict[str, Any]], end_s: float) -> str:
    """When the scope ran (its measured enter/exit), else when its variables lived."""
    if scope.spans:
        enter = scope.spans[0][0]
        exits = [e for _, e in scope.spans]
        last = (
            "the end"
            if None in exits
            else human_duration_ns(max(e for e in exits if e is not None) * 1e9)
        )
        times = f" (entered {len(scope.spans)}×)" if len(scope.spans) > 1 else ""
        return f"ran {human_duration_ns(enter * 1e9)} – {last}{times}"
    start = min(v["created_s"] for v in every)
    end = max((v["died_s"] if v["died_s"] is not None else end_s) for v in every)
    return (
        f"no scope enter/exit recorded; variables live {human_duration_ns(start * 1e9)} – "
        f"{human_duration_ns(end * 1e9)}"
    )


def _color(category: str) -> str:
    return category_hex(category or "Other")
