"""Squarified treemap layout (Bruls, Huizing and van Wijk, 2000) in plain Python.

Laying the rectangles out here lets one Vega-Lite chart (Altair ``mark_rect`` with
``x, x2, y, y2``) draw the treemap in the SVG and in the dashboard alike.
"""

from __future__ import annotations

from collections.abc import Sequence

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
