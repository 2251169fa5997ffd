"""Exporters: SVG reports, the snapshot JSON and the HTML dashboard, from the six JSON files.

Each exporter is an object with ``name``, ``filename``, ``build(reports) -> object`` and
``render(object, fileobj)``; :data:`EXPORTERS` lists them and :func:`write_reports` runs them
all. Heavy imports (Altair, vl-convert) happen only when an exporter runs.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from memscope.exporters.base import Exporter
from memscope.exporters.report_files import (
    KINDS,
    ReportProblem,
    Reports,
    find_reports,
    load_reports,
)

__all__ = [
    "EXPORTERS",
    "Exporter",
    "KINDS",
    "ReportProblem",
    "ExportResult",
    "exporter",
    "find_reports",
    "load_reports",
    "write_reports",
]

#: The registered exporters as (module, class) names, in the order they run.
EXPORTERS: tuple[tuple[str, str], ...] = (
    ("memscope.exporters.memory_svg", "MemoryAnalysisSvg"),
    ("memscope.exporters.timeline_svg", "LifecycleTimelineSvg"),
    ("memscope.exporters.snapshot_json", "MemorySnapshotJson"),
    ("memscope.exporters.dashboard_html", "DashboardHtml"),
    ("memscope.exporters.flame_svg", "FlameGraphSvg"),
)


def exporter(module: str, cls: str) -> Exporter:
    """Instantiate one registered exporter."""
    made: Exporter = getattr(importlib.import_module(module), cls)()
    return made


class ExportResult(list[Path]):
    """The files written (a list of paths), plus ``problems``.

    ``problems`` maps kind -> message for each unusable analysis file; the panels built from
    it say so in the outputs.
    """

    problems: dict[str, str]


def write_reports(
    analysis_dir: str | Path,
    out_dir: str | Path | None = None,
    reports: Reports | None = None,
    only: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write the SVGs, ``memory_snapshot.json`` and ``dashboard.html`` into ``out_dir``.

    ``analysis_dir`` holds the six ``*_<kind>.json`` files; ``out_dir`` defaults to it;
    ``only`` limits the output to those file names (e.g. ``["dashboard.html"]``). Each file is
    written to a temporary name and renamed, so a reader never sees half a file;
    ``progress`` is then called with its name.
    """
    source = Path(analysis_dir)
    target = Path(out_dir) if out_dir is not None else source
    target.mkdir(parents=True, exist_ok=True)
    loaded = reports if reports is not None else load_reports(source)
    written = ExportResult()
    written.problems = {k: v.message for k, v in loaded.items() if isinstance(v, ReportProblem)}
    wanted = None if only is None else set(only)
    for module, cls in EXPORTERS:
        exp = exporter(module, cls)
        if wanted is not None and exp.filename not in wanted:
            continue
        obj = exp.build(loaded)
        path = target / exp.filename
        fd, tmp = tempfile.mkstemp(prefix=f".{exp.filename}.", dir=target)
        try:
            with os.fdopen(fd, "wb") as fh:
                exp.render(obj, fh)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(path)
        if progress:
            progress(exp.filename)
    return written
