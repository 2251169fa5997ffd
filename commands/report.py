"""``memscope report LOG|DIR``: both SVGs, the snapshot JSON and the static dashboard.

From a directory holding the six analysis files, the outputs are written beside them (or into
``--out``). From a log (a run directory or its ``events/``), the analyzers run first
(``memscope.analyzers.run_all``) and write the six files into ``--out`` (default: the run
directory), then the exporters run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from memscope.errors import CliError


def is_log(path: Path) -> bool:
    """A run directory (with ``events/manifest.json``) or an ``events/`` directory."""
    return (path / "manifest.json").is_file() or (path / "events" / "manifest.json").is_file()


def analyze(log: Path, out: Path, bar: Any = None) -> list[str]:
    """Run every analyzer on ``log`` into ``out``; a clear error when they are not built in.

    ``bar``: a :class:`memscope.commands.progress.ProgressBar` to advance. Returns what of
    the log could not be read (damaged batches, missing segments); an unreadable log (no or
    a garbage manifest) is a :class:`CliError` (exit status 2).
    """
    try:
        from memscope.analyzers import run_all  # type: ignore[attr-defined,unused-ignore]
        from memscope.analyzers.views import open_reader
        from memscope.commands.query import open_or_fail
    except ImportError:
        raise CliError(
            "reading a log needs the analyzers (memscope.analyzers.run_all), which this build "
            "lacks; run `memscope analyze LOG --out DIR` and then `memscope report DIR`"
        ) from None
    reader = open_or_fail(str(log), open_reader)
    run_all(reader, out, progress=bar.step if bar else None, on_chunk=bar.folded if bar else None)
    return list(reader.problems)


def progress_bar(label: str, analyzing: bool) -> Any:
    """The bar of a report: the fold and each analyzer when ``analyzing``, each exporter."""
    from memscope.analyzers import ANALYZERS
    from memscope.commands.progress import ProgressBar
    from memscope.exporters import EXPORTERS

    return ProgressBar((len(ANALYZERS) + 1 if analyzing else 0) + len(EXPORTERS), label)


def write(source: Path, out: Path, bar: Any = None) -> int:
    """Export ``source`` (six JSON files) into ``out``; print what was written."""
    from memscope.exporters import find_reports, write_reports

    if not find_reports(source):
        raise CliError(
            f"{source}: no *_memory_analysis.json, *_lifetime.json, ... files here; "
            "pass a log or a directory written by `memscope analyze`"
        )
    with bar or progress_bar("report", analyzing=False) as shown:
        written = write_reports(source, out, progress=shown.step)
    for kind, message in sorted(written.problems.items()):
        print(f"memscope report: warning: {kind}: {message}", file=sys.stderr)
    for path in written:
        print(path)
    return 0


class ReportCommand:
    """The ``report`` verb."""

    name = "report"
    help = "SVGs, snapshot JSON and the static dashboard from a log or the six JSON files"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``PATH`` and ``--out``."""
        parser.add_argument(
            "path",
            metavar="LOG|DIR",
            type=Path,
            help="a run directory / events directory, or a directory with the "
            "six analysis JSON files",
        )
        parser.add_argument(
            "--out", type=Path, default=None, help="where to write (default: beside the input)"
        )

    def run(self, args: argparse.Namespace) -> int:
        """Analyze when given a log, then export."""
        path: Path = args.path
        if not path.exists():
            raise CliError(f"{path}: no such file or directory")
        if not path.is_dir():
            raise CliError(f"{path}: expected a directory (a run, its events/, or analysis files)")
        if is_log(path) and not (args.out is None and _has_reports(path)):
            run_dir = path.parent if path.name == "events" else path
            out = args.out or run_dir
            out.mkdir(parents=True, exist_ok=True)
            with progress_bar("report", analyzing=True) as bar:
                problems = analyze(path, out, bar)
                status = write(out, out, bar)
            _say_window(path)
            from memscope.commands.query import report_problems

            return report_problems("report", problems) or status
        return write(path, args.out or path)


def _say_window(log: Path) -> None:
    """When retention trimmed the log, say which window the raw events still cover."""
    from memscope.analyzers.runner import retained_window
    from memscope.analyzers.views import open_reader

    window = retained_window(open_reader(log))
    if window:
        print(
            f"memscope report: the figures cover the whole run; the raw events are kept in "
            f"full detail from {window['from']} to {window['to']} "
            f"({window['retired']['segments']} older segments retired by retention; "
            f"metadata.detail_window in each JSON file)",
            file=sys.stderr,
        )


def _has_reports(path: Path) -> bool:
    from memscope.exporters import find_reports

    return bool(find_reports(path))


COMMAND = ReportCommand()
