"""``memory_analysis.svg``: the one-page picture of a run's memory.

Metric cards, memory over time, a treemap by category and type with variable names, the size
distribution, tracked variables by category, the top allocation sites and a summary; Altair
charts composed with ``&`` and ``|`` and rendered to SVG by vl-convert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO

import altair as alt

from memscope.exporters import charts, extract, treemap
from memscope.exporters.base import render_vegalite_svg
from memscope.exporters.formatting import human_bytes, human_count, human_duration_ns
from memscope.exporters.report_files import Reports, report

WIDTH = 1180
HALF = 560


@dataclass
class MemoryAnalysisView:
    """The numbers and rows the memory SVG draws."""

    stats: dict[str, Any]
    series: list[dict[str, Any]]
    peaks: list[dict[str, Any]]
    types: list[dict[str, Any]]
    variables: list[dict[str, Any]]
    distribution: list[dict[str, Any]]
    sites: list[dict[str, Any]]
    processes: list[dict[str, Any]]
    problems: dict[str, str] = field(default_factory=dict)
    generated_at: str = ""


def _summary_lines(view: MemoryAnalysisView) -> list[tuple[str, str]]:
    s = view.stats
    lines: list[tuple[str, str]] = [
        ("Total allocations", human_count(s.get("total_allocations"))),
        ("Total frees", human_count(s.get("total_deallocations"))),
        ("Total allocated", human_bytes(s.get("total_allocated"))),
        (
            "Active / peak",
            f"{human_bytes(s.get('active_memory'))} / {human_bytes(s.get('peak_memory'))}",
        ),
        (
            "Tracked variables",
            human_count(len(view.variables)) if view.variables else "none tracked",
        ),
        ("Unmatched frees", human_count(s.get("unmatched_frees"))),
    ]
    alive = [v for v in view.variables if v["died_s"] is None and v["created_s"] is not None]
    if view.variables:
        lines.append(("Still alive at the end", human_count(len(alive))))
        lifetimes = sorted(v["lifetime_ns"] for v in view.variables if v["lifetime_ns"] is not None)
        if lifetimes:
            lines.append(
                ("Median variable lifetime", human_duration_ns(lifetimes[len(lifetimes) // 2]))
            )
    if view.types:
        top = view.types[0]
        lines.append(("Largest type", f"{top['type_name']} ({human_bytes(top['bytes'])})"))
    if view.processes:
        pids = ", ".join(p["pid"] for p in view.processes[:6])
        more = " …" if len(view.processes) > 6 else ""
        lines.append(
            (
                "Processes",
                f"{len(view.processes)} (pid{'s' if len(view.processes) > 1 else ''} {pids}{more})",
            )
        )
    return [(k, charts.shorten_value(v)) for k, v in lines]


class MemoryAnalysisSvg:
    """Exporter of ``memory_analysis.svg``."""

    name = "memory analysis SVG"
    filename = "memory_analysis.svg"

    def build(self, reports: Reports) -> MemoryAnalysisView:
        """Extract what the picture shows from the memory and lifetime reports."""
        mem, life = report(reports, "memory_analysis"), report(reports, "lifetime")
        t0 = extract.run_start(reports)
        probs = extract.problem_messages(reports)
        variables = extract.variables(mem, life, t0)
        return MemoryAnalysisView(
            stats=extract.stats(mem),
            series=extract.memory_over_time(mem, t0),
            peaks=extract.process_peaks(mem, t0),
            types=extract.largest_variables_first(extract.types(mem), variables),
            variables=variables,
            distribution=extract.distribution(report(reports, "performance")),
            sites=extract.sites(extract.pick(mem, "top_allocation_sites")),
            processes=extract.processes(reports),
            problems={
                k: v
                for k, v in probs.items()
                if k in ("memory_analysis", "lifetime", "performance")
            },
            generated_at=str(
                extract.pick(extract.pick(mem, "metadata"), "generated_at", default="")
            ),
        )

    def chart(self, view: MemoryAnalysisView) -> alt.VConcatChart:
        """The composed Altair chart (for callers that want an Altair object)."""
        return (
            alt.vconcat(
                *[p[0] if len(p) == 1 else alt.hconcat(*p) for p in self._rows(view)], spacing=34
            )
            .resolve_scale(color="independent")
            .properties(title=self._title(view))
            .configure(**charts.theme_config())
        )

    def spec(self, view: MemoryAnalysisView) -> dict[str, Any]:
        """The Vega-Lite spec of :meth:`chart`, assembled from each part's own spec.

        Altair's ``&``/``|`` copy every sub-chart again at each level; converting the parts
        one by one and joining the dicts gives the same picture in about half the time.
        """
        datasets: dict[str, Any] = {}
        rows = []
        for row in self._rows(view):
            specs = []
            for part in row:
                d = part.to_dict(validate=False)
                datasets.update(d.pop("datasets", {}))
                d.pop("$schema", None)
                d.pop("config", None)
                specs.append(d)
            rows.append(specs[0] if len(specs) == 1 else {"hconcat": specs})
        return {
            "$schema": alt.SCHEMA_URL,
            "vconcat": rows,
            "spacing": 34,
            "resolve": {"scale": {"color": "independent"}},
            "title": self._title(view).to_dict(validate=False),
            "config": charts.theme_config(),
            "datasets": datasets,
        }

    def _rows(self, view: MemoryAnalysisView) -> list[list[Any]]:
        rows: list[list[Any]] = []
        if view.problems:
            lines = [f"{k}: {m}" for k, m in sorted(view.problems.items())]
            rows.append([charts.banner(lines, WIDTH)])
        rows += [
            [charts.metric_cards(view.stats, WIDTH, len(view.processes))],
            [charts.memory_timeline(view.series, WIDTH - 80, peaks=view.peaks)],
            [treemap.type_treemap(view.types, WIDTH, 380)],
            [
                charts.size_distribution(view.distribution, HALF - 40),
                charts.variables_by_category(view.variables, HALF - 40),
            ],
            [charts.top_sites(view.sites, HALF), charts.summary(_summary_lines(view), HALF)],
        ]
        return rows

    def _title(self, view: MemoryAnalysisView) -> alt.TitleParams:
        subtitle = [
            f"{len(view.processes)} process(es) · generated {view.generated_at}"
            if view.generated_at
            else f"{len(view.processes)} process(es)"
        ]
        for proc in view.processes[:3]:
            subtitle.append(charts.shorten_value(f"pid {proc['pid']}: {proc['argv']}", 140))
        return alt.TitleParams(
            "memscope · memory analysis",
            subtitle=subtitle,
            fontSize=22,
            subtitleFontSize=12,
            subtitleColor=charts.MUTED,
            anchor="start",
            offset=16,
        )

    def render(self, obj: MemoryAnalysisView, fileobj: BinaryIO) -> None:
        """Render the chart to SVG (one vl-convert call)."""
        fileobj.write(render_vegalite_svg(self.spec(obj)).encode("utf-8"))
