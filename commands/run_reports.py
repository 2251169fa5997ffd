"""``memscope run``'s reports, prepared while the program runs.

From the program's exit to its reports, ``memscope run`` used to fold the whole log, run the
analyzers, then render each report in turn. :class:`RunReports` moves what it can off that
path: the log is folded while it is written (:class:`memscope.analyzers.background.
BackgroundFold`), vl-convert's engine starts in a child process while the program runs
(:class:`memscope.exporters.render_worker.SvgRenderer`), the folded state is handed to the
analyzers (its checkpoint written meanwhile), and the SVG is drawn there as soon as its
three analyses are written, while this process writes the other reports. The files are
the ones ``memscope analyze`` and ``memscope report`` write from the same log.
"""

from __future__ import annotations

import gc
import importlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The analyzers whose files ``memory_analysis.svg`` is drawn from.
SVG_SOURCES = ("memory", "lifecycle", "performance")


class RunReports:
    """The reports of one run directory, prepared from the broker's start on."""

    def __init__(self, events_dir: Path, out_dir: Path) -> None:
        from memscope.analyzers.background import BackgroundFold
        from memscope.analyzers.runner import fold_params

        self.events_dir = events_dir
        self.out_dir = out_dir
        self.fold = BackgroundFold(events_dir, fold_params(None)).start()
        self.renderer: Any = None
        #: The folded state, from :meth:`log_closed` until the analyzers have read it.
        self.state: Any = None
        # The SVG renderer's engine and this process's exporter imports (Altair: a few tenths
        # of a second each) get ready while the program runs.
        from memscope.exporters.render_worker import SvgRenderer

        try:
            self.renderer = SvgRenderer()
        except OSError as exc:  # no process to spare: the SVG is drawn here
            print(f"memscope: rendering in this process ({exc})", file=sys.stderr)
        threading.Thread(target=_import_exporters, name="memscope-imports", daemon=True).start()

    def program_ended(self) -> None:
        """The program ended: fold what it sent last now (its exit row may be in)."""
        self.fold.nudge()

    def log_closed(self, on_events: Callable[[int], None] | None = None) -> None:
        """The broker closed the log: fold the rest and checkpoint the state.

        ``on_events``: called with the memory events folded (a progress bar).
        """
        # The checkpoint is written while the reports read the state (not read back).
        self.state = self.fold.finish(background_save=True, on_events=on_events)
        self.fold.state = None
        if self.state is not None:
            self.state.release_fold()  # the reports read its tables: the fold's memory back

    def write(
        self,
        progress: Callable[[str], None] | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> list[Path]:
        """The six analysis files, then the reports; every path written, in order."""
        from memscope.analyzers import run_all
        from memscope.exporters import EXPORTERS, exporter, write_reports
        from memscope.exporters.render_worker import FILES

        out = self.out_dir
        names = [exporter(module, cls).filename for module, cls in EXPORTERS]
        rendered = [n for n in names if n in FILES] if self.renderer is not None else []
        waiting = set(SVG_SOURCES) if rendered else set()

        def step(kind: str) -> None:
            # The SVG is drawn from three analyses: it starts once they are written.
            if kind in waiting:
                waiting.discard(kind)
                if not waiting:
                    self.renderer.submit(out, out)
            if progress:
                progress(kind)

        paths = list(
            run_all(
                self.events_dir,
                out,
                progress=step,
                on_chunk=on_chunk,
                state=self.state,
                first=SVG_SOURCES if rendered else (),
            )
        )
        self.state = None
        here = write_reports(
            out, out, only=[n for n in names if n not in rendered], progress=progress
        )
        there = self.renderer.result() if rendered else []
        if progress:
            for path in there:
                progress(path.name)
        by_name = {p.name: p for p in [*here, *there]}
        return paths + [by_name[n] for n in names if n in by_name]

    def close(self) -> None:
        """Stop the fold and the renderer (after the reports, or when they are abandoned)."""
        self.fold.stop()
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        # memscope run exits next: the interpreter's last collections would walk every
        # object Altair, DuckDB and pyarrow made (a few tenths of a second); none is garbage.
        gc.freeze()


def _import_exporters() -> None:
    from memscope.exporters import EXPORTERS

    for module, _ in EXPORTERS:
        try:
            importlib.import_module(module)
        except ImportError:  # raised again, with its message, where it is used
            return
