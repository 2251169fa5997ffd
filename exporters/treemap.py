"""The type treemap: a squarified layout (Bruls, Huizing and van Wijk, 2000) and its chart.

Laying the rectangles out here lets one Vega-Lite chart (Altair ``mark_rect`` with
``x, x2, y, y2``) draw the treemap in the SVG and in the dashboard alike, labelled with
category and type names, sizes and the tracked variables' names where they fit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import altair as alt

from memscope.exporters.charts import INK, category_color, placeholder
from memscope.exporters.formatting import human_bytes, human_percent, shorten

Rect = tuple[float, float, float, float]  # x, y, width, height


def _worst(row: Sequence[float], side: float) -> float:
    total = sum(row)
    if total <= 0 or side <= 0:
        return float("inf")
    return max(side * side * max(row) / (total * total), total * total / (side * side * min(row)))


def squarify(sizes: Sequence[float], rect: Rect) -> list[Rect]:
    """Rectangles for ``sizes`` (sorted largest first, all > 0) filling ``rect``, in order."""
    x, y, w, h = rect
    total = float(sum(sizes))
    if total <= 0 or w <= 0 or h <= 0:
        return [(x, y, 0.0, 0.0) for _ in sizes]
    areas = [s * w * h / total for s in sizes]
    out: list[Rect] = []
    i = 0
    while i < len(areas):
        side = min(w, h)
        row = [areas[i]]
        i += 1
        while i < len(areas) and _worst([*row, areas[i]], side) <= _worst(row, side):
            row.append(areas[i])
            i += 1
        row_area = sum(row)
        if w >= h:
            col_w = row_area / h if h else 0.0
            yy = y
            for a in row:
                rh = a / col_w if col_w else 0.0
                out.append((x, yy, col_w, rh))
                yy += rh
            x, w = x + col_w, w - col_w
        else:
            row_h = row_area / w if w else 0.0
            xx = x
            for a in row:
                rw = a / row_h if row_h else 0.0
                out.append((xx, y, rw, row_h))
                xx += rw
            y, h = y + row_h, h - row_h
    return out


def type_treemap(
    types: list[dict[str, Any]],
    width: int = 1180,
    height: int = 360,
    max_types_per_category: int = 24,
) -> Any:
    """A squarified treemap: categories, then types, labelled with sizes and variable names."""
    title = "Memory by type (category → type; tracked variables named inside)"
    positive = [t for t in types if t["bytes"] > 0]
    if not positive:
        return placeholder(title, "not measured: no type categories in the analysis", width)
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in positive:
        by_cat[t["category"]].append(t)
    cats = sorted(by_cat.items(), key=lambda kv: -sum(t["bytes"] for t in kv[1]))
    total = sum(t["bytes"] for t in positive)
    cat_rects = squarify([sum(t["bytes"] for t in ts) for _, ts in cats], (0, 0, width, height))
    boxes: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for (cat, ts), (cx, cy, cw, ch) in zip(cats, cat_rects, strict=True):
        cat_bytes = sum(t["bytes"] for t in ts)
        header = 18 if ch > 40 and cw > 60 else 0
        boxes.append(
            {
                "level": 0,
                "category": cat,
                "x": cx,
                "y": cy,
                "x2": cx + cw,
                "y2": cy + ch,
                "name": cat,
                "size": human_bytes(cat_bytes),
                "share": human_percent(cat_bytes / total),
                "vars": "",
            }
        )
        if header:
            labels.append(
                {
                    "x": cx + 5,
                    "y": cy + 4,
                    "fs": 11,
                    "fw": "bold",
                    "c": INK,
                    "text": _fit(
                        [
                            f"{cat} · {human_bytes(cat_bytes)} · "
                            f"{human_percent(cat_bytes / total)}",
                            f"{cat} · {human_bytes(cat_bytes)}",
                            cat,
                        ],
                        int(cw / 6.6),
                    ),
                }
            )
        shown = ts[:max_types_per_category]
        rest = ts[max_types_per_category:]
        items = [(t["type_name"], t["bytes"], t["variables"], t["count"]) for t in shown]
        if rest:
            items.append((f"{len(rest)} more types", sum(t["bytes"] for t in rest), [], None))
        inner = (cx + 2, cy + header + 1, max(0.0, cw - 4), max(0.0, ch - header - 3))
        for (name, size, var_names, count), (x, y, w, h) in zip(
            items, squarify([i[1] for i in items], inner), strict=True
        ):
            vars_text = ", ".join(var_names)
            boxes.append(
                {
                    "level": 1,
                    "category": cat,
                    "x": x,
                    "y": y,
                    "x2": x + w,
                    "y2": y + h,
                    "name": name,
                    "size": human_bytes(size),
                    "share": human_percent(size / total),
                    "vars": vars_text,
                    "count": count,
                }
            )
            _box_labels(labels, name, size, var_names, (x, y, w, h))
    data = alt.Data(values=tuple(boxes))  # a tuple: not deep-copied on composition
    x_enc = alt.X("x:Q", scale=alt.Scale(domain=[0, width]), axis=None)
    y_enc = alt.Y("y:Q", scale=alt.Scale(domain=[0, height], reverse=True), axis=None)
    color = alt.Color(
        "category:N",
        scale=category_color([c for c, _ in cats]),
        legend=alt.Legend(orient="bottom", title=None, columns=8),
    )
    rects = (
        alt.Chart(data, title=title)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=x_enc,
            y=y_enc,
            x2="x2:Q",
            y2="y2:Q",
            color=color,
            opacity=alt.condition("datum.level == 0", alt.value(0.35), alt.value(0.9)),
            tooltip=[
                alt.Tooltip("category:N"),
                alt.Tooltip("name:N", title="type"),
                alt.Tooltip("size:N"),
                alt.Tooltip("share:N"),
                alt.Tooltip("vars:N", title="variables"),
            ],
        )
    )
    text = (
        alt.Chart(alt.Data(values=tuple(labels)))
        .mark_text(align="left", baseline="top")
        .encode(
            x=alt.X("x:Q", scale=alt.Scale(domain=[0, width]), axis=None),
            y=alt.Y("y:Q", scale=alt.Scale(domain=[0, height], reverse=True), axis=None),
            text="text:N",
            size=alt.Size("fs:Q", scale=None, legend=None),
            color=alt.Color("c:N", scale=None, legend=None),
            opacity=alt.value(1),
        )
    )
    bold = text.transform_filter("datum.fw == 'bold'").mark_text(
        align="left", baseline="top", fontWeight="bold"
    )
    plain = text.transform_filter("datum.fw != 'bold'")
    layered = (rects + plain + bold).resolve_scale(color="independent", size="independent")
    return layered.properties(width=width, height=height)


def _box_labels(
    labels: list[dict[str, Any]],
    name: str,
    size: float,
    var_names: list[str],
    box: tuple[float, float, float, float],
) -> None:
    x, y, w, h = box
    if w < 38 or h < 16:
        return
    chars = int((w - 8) / 6.6)
    if chars < 5 and len(name) > chars:
        return
    labels.append(
        {
            "x": x + 4,
            "y": y + 3,
            "fs": 11,
            "fw": "bold",
            "c": "white",
            "text": name if len(name) <= chars else name[: chars - 1] + "…",
        }
    )
    size_text = human_bytes(size)
    if h >= 30 and len(size_text) <= int((w - 8) / 6):
        labels.append(
            {"x": x + 4, "y": y + 17, "fs": 10, "fw": "", "c": "white", "text": size_text}
        )
    lines = int((h - 33) // 12)
    for i, var in enumerate(var_names[: max(0, lines)]):
        more = len(var_names) - i - 1
        text = var if i < lines - 1 or more == 0 else f"{var} (+{more} more)"
        labels.append(
            {
                "x": x + 4,
                "y": y + 31 + 12 * i,
                "fs": 9,
                "fw": "",
                "c": "#f1f5f9",
                "text": shorten(text, int((w - 8) / 5.4)),
            }
        )


def _fit(candidates: list[str], chars: int) -> str:
    """The first (richest) candidate label that fits ``chars``, else the last one shortened."""
    for text in candidates:
        if len(text) <= chars:
            return text
    return shorten(candidates[-1], chars)
