"""``flamegraph.svg``: the static flame graph (icicle) of the bytes alive at the peak.

Drawn from ``memory_analysis.json``'s ``flame_graph`` (see :mod:`memscope.analyzers.flame`);
each frame's ``<title>`` holds its function, file:line, bytes and share, shown on hover by
SVG viewers. Written with ElementTree, so every traced name is escaped text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib
from typing import Any, BinaryIO

from memscope.exporters.flame_model import clean_flame, layout
from memscope.exporters.formatting import human_bytes
from memscope.exporters.report_files import Reports, report

WIDTH = 1200
ROW = 17
TOP = 44
CHAR_PX = 6.6  # average glyph width of the 11px label font, to cut labels that do not fit


def _colour(name: str) -> str:
    h = zlib.crc32(name.encode("utf-8", "replace"))
    return f"rgb({205 + h % 50},{90 + (h >> 8) % 120},{40 + (h >> 16) % 40})"


def _label(text: str, width: float) -> str:
    room = int((width - 6) / CHAR_PX)
    if room < 3:
        return ""
    return text if len(text) <= room else text[: room - 1] + "…"


class FlameGraphSvg:
    """Exporter of ``flamegraph.svg``."""

    name = "flame graph SVG"
    filename = "flamegraph.svg"

    def build(self, reports: Reports) -> dict[str, Any]:
        """The boxes of the peak view (or a message when the report has no flame data)."""
        model = clean_flame(report(reports, "memory_analysis"))
        if model is None:
            return {
                "message": "No flame graph data: the memory analysis report is missing, "
                "damaged or from an older memscope."
            }
        view = "peak" if "peak" in model["views"] else model["default"]
        boxes = layout(model, view, WIDTH - 20)
        rows = []
        for b in boxes:
            if b.node == 0:
                name, where = "all", ""
            else:
                fn, file, line = model["frames"][model["frame"][b.node]]
                name, where = fn, (f"{file}:{line}" if line else file)
            rows.append(
                {
                    "name": name,
                    "where": where,
                    "x": b.x,
                    "w": b.width,
                    "depth": b.depth,
                    "bytes": b.nbytes,
                    "blocks": b.blocks,
                }
            )
        return {
            "title": f"memscope flame graph: {model['views'][view]['label']}",
            "total": boxes[0].nbytes,
            "rows": rows,
        }

    def render(self, obj: dict[str, Any], fileobj: BinaryIO) -> None:
        """Write the SVG."""
        rows = obj.get("rows", [])
        depth = max((r["depth"] for r in rows), default=0)
        height = TOP + (depth + 1) * ROW + 10
        root = ET.Element(
            "svg",
            xmlns="http://www.w3.org/2000/svg",
            width=str(WIDTH),
            height=str(height),
            viewBox=f"0 0 {WIDTH} {height}",
            attrib={"font-family": "sans-serif"},
        )
        ET.SubElement(root, "rect", width="100%", height="100%", fill="#ffffff")
        title = ET.SubElement(
            root, "text", x="10", y="20", attrib={"font-size": "15", "font-weight": "bold"}
        )
        title.text = obj.get("title", "memscope flame graph")
        sub = ET.SubElement(
            root, "text", x="10", y="36", attrib={"font-size": "11", "fill": "#555"}
        )
        sub.text = obj.get("message") or (
            f"total {human_bytes(obj['total'])}; width = bytes alive, callers above callees; "
            "hover a frame for details"
        )
        total = obj.get("total") or 1
        for r in rows:
            g = ET.SubElement(root, "g")
            tip = ET.SubElement(g, "title")
            tip.text = (
                f"{r['name']}"
                + (f"\n{r['where']}" if r["where"] else "")
                + f"\n{human_bytes(r['bytes'])} in {r['blocks']:,} blocks "
                f"({100 * r['bytes'] / total:.1f}%)"
            )
            y = TOP + r["depth"] * ROW
            ET.SubElement(
                g,
                "rect",
                x=f"{10 + r['x']:.2f}",
                y=str(y),
                width=f"{max(r['w'] - 0.5, 0.1):.2f}",
                height=str(ROW - 1),
                fill="#c8c8d8" if r["depth"] == 0 else _colour(r["name"]),
                rx="2",
            )
            text = _label(r["name"], r["w"])
            if text:
                label = ET.SubElement(
                    g, "text", x=f"{13 + r['x']:.2f}", y=str(y + 12), attrib={"font-size": "11"}
                )
                label.text = text
        fileobj.write(ET.tostring(root, encoding="utf-8", xml_declaration=True))
