"""The flame graph model of ``memory_analysis.json``, checked, and its icicle layout.

The model is :mod:`memscope.analyzers.flame`'s; a report file may be damaged or hand-edited,
so :func:`clean_flame` keeps it only when it is consistent (every parent before its child,
every index in range) and returns None otherwise: a bad file costs the flame graph, never
the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memscope.exporters.extract import pick


def _ints(value: Any) -> list[int] | None:
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        return None
    return value


def clean_flame(mem: dict[str, Any]) -> dict[str, Any] | None:
    """The flame model of a memory analysis report, or None when absent or inconsistent."""
    model = pick(mem, "flame_graph")
    if not isinstance(model, dict) or model.get("format") != 1:
        return None
    parent, frame, frames = (
        _ints(model.get("parent")),
        _ints(model.get("frame")),
        model.get("frames"),
    )
    if (
        parent is None
        or frame is None
        or not isinstance(frames, list)
        or not parent
        or len(parent) != len(frame)
        or parent[0] != -1
    ):
        return None
    if not all(isinstance(f, list) and len(f) == 3 for f in frames):
        return None
    if any(
        not 0 <= parent[i] < i or not 0 <= frame[i] < len(frames) for i in range(1, len(parent))
    ):
        return None
    views = model.get("views")
    if not isinstance(views, dict) or not views:
        return None
    clean_views = {}
    for name, view in views.items():
        node, nbytes, blocks = (_ints(pick(view, k)) for k in ("node", "bytes", "blocks"))
        if (
            node is None
            or nbytes is None
            or blocks is None
            or not len(node) == len(nbytes) == len(blocks)
            or any(not 0 <= n < len(parent) for n in node)
            or any(b < 0 for b in nbytes)
        ):
            return None
        clean_views[str(name)] = {
            "label": str(pick(view, "label", default=name)),
            "node": node,
            "bytes": nbytes,
            "blocks": blocks,
            "total": sum(nbytes),
        }
    default = model.get("default")
    return {
        "format": 1,
        "frames": [[str(f[0]), str(f[1]), f[2] if type(f[2]) is int else 0] for f in frames],
        "parent": parent,
        "frame": frame,
        "views": clean_views,
        "default": default if default in clean_views else next(iter(clean_views)),
    }


@dataclass(frozen=True)
class Box:
    """One frame drawn: its node, x and width (px), depth, bytes and blocks."""

    node: int
    x: float
    width: float
    depth: int
    nbytes: int
    blocks: int


def layout(model: dict[str, Any], view: str, width: float, min_px: float = 1.0) -> list[Box]:
    """The icicle boxes of one view: root on top, children by bytes, largest first."""
    parent = model["parent"]
    n = len(parent)
    total, blocks = [0] * n, [0] * n
    v = model["views"][view]
    for node, nbytes, count in zip(v["node"], v["bytes"], v["blocks"], strict=True):
        total[node] += nbytes
        blocks[node] += count
    for i in range(n - 1, 0, -1):
        total[parent[i]] += total[i]
        blocks[parent[i]] += blocks[i]
    children: list[list[int]] = [[] for _ in range(n)]
    for i in range(1, n):
        if total[i] > 0:
            children[parent[i]].append(i)
    boxes = [Box(0, 0.0, width, 0, total[0], blocks[0])]
    if not total[0]:
        return boxes
    todo = [(0, 0.0, 0)]
    while todo:
        node, x, depth = todo.pop()
        for child in sorted(children[node], key=lambda c: -total[c]):
            w = width * total[child] / total[0]
            if w >= min_px:
                boxes.append(Box(child, x, w, depth + 1, total[child], blocks[child]))
                todo.append((child, x, depth + 1))
            x += w
    return boxes
