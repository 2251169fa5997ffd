"""``memscope flamegraph RUN``: an interactive flame graph as one offline HTML file."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memscope.errors import CliError


def parse_at(value: str) -> str | float:
    """``peak``, ``end`` or a number of seconds (argparse type)."""
    if value in ("peak", "end"):
        return value
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected peak, end or seconds since the run's start"
        ) from None
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r}: seconds must be finite and >= 0")
    return seconds


def flame_model(
    log: str | Path, opts: Any, on_events: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """The flame model of a log (a run directory or its ``events/``), with title lines.

    ``on_events``: called with the memory events folded or matched so far (progress).
    """
    from memscope.analyzers.flame import FlameError, build_flame
    from memscope.analyzers.memstats import process_stats
    from memscope.analyzers.runner import connect_analyzed
    from memscope.analyzers.views import connect, open_reader
    from memscope.commands.query import open_or_fail

    reader = open_or_fail(str(log), open_reader)
    if opts.needs_log:
        con = open_or_fail(
            reader, connect, raw_memory=False, matched=True, state=True, on_events=on_events
        )
    else:
        con = open_or_fail(reader, connect_analyzed, on_events=on_events)
    try:
        model = build_flame(con, opts)
        stats = process_stats(con, opts.pid)
    except FlameError as exc:
        raise CliError(str(exc)) from None
    finally:
        con.close()
    run = Path(log)
    run = run.parent if run.name == "events" else run
    model["title"] = f"memscope flame graph: {run.name}"
    scope = [f"pid {opts.pid}" if opts.pid is not None else "all processes"]
    if opts.tid is not None:
        scope.append(f"thread {opts.tid}")
    model["subtitle"] = (
        f"{', '.join(scope)}; peak {stats['peak_memory']:,} B, "
        f"alive at the end {stats['active_memory']:,} B"
    )
    model["stats"] = {
        k: stats.get(k)
        for k in (
            "peak_memory",
            "peak_ts_ns",
            "active_memory",
            "active_allocations",
            "total_allocations",
        )
    }
    return model


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FlamegraphCommand:
    """The ``flamegraph`` verb."""

    name = "flamegraph"
    help = "an interactive flame graph (offline HTML) of a run"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """RUN, --at, --leaks, --temporal, --pid, --thread, -o."""
        parser.add_argument(
            "log", metavar="RUN", type=Path, help="a run directory or its events/ directory"
        )
        parser.add_argument(
            "--at",
            type=parse_at,
            default="peak",
            metavar="peak|end|SECONDS",
            help="the instant drawn: the peak (default), the end, or seconds "
            "since the run's first event",
        )
        parser.add_argument(
            "--leaks", action="store_true", help="what is still alive at the end (same as --at end)"
        )
        parser.add_argument(
            "--temporal",
            action="store_true",
            help="add a memory-over-time chart: brushing a window draws the "
            "blocks allocated in it and alive at its end (from the analysis "
            "state; with --thread, reads the log)",
        )
        parser.add_argument("--pid", type=int, default=None, help="only this process")
        parser.add_argument(
            "--thread",
            type=int,
            default=None,
            metavar="T",
            help="only blocks allocated by this thread (tid of `threads`)",
        )
        parser.add_argument(
            "-o",
            "--output",
            type=Path,
            default=None,
            metavar="FILE",
            help="the HTML file (default: RUN/flamegraph.html)",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Build the model, write the page, print its path."""
        from memscope.analyzers.flame import FlameOptions
        from memscope.commands.progress import StatusLine
        from memscope.exporters.flame_html import flame_page

        log: Path = args.log
        if not log.is_dir():
            raise CliError(f"{log}: not a run directory or events/ directory")
        if args.leaks and args.at != "peak":
            raise CliError("--leaks draws the end: give --leaks or --at, not both")
        opts = FlameOptions(
            at=args.at, leaks=args.leaks, temporal=args.temporal, pid=args.pid, tid=args.thread
        )
        with StatusLine("flamegraph") as line:
            matching = "matched" if opts.needs_log else "folded"
            model = flame_model(log, opts, lambda n: line.show(f"{n:,} memory events {matching}"))
        run = log.parent if log.name == "events" else log
        out: Path = args.output or run / "flamegraph.html"
        try:
            write_atomic(out, flame_page(model))
        except OSError as exc:
            raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
        print(out)
        return 0


COMMAND = FlamegraphCommand()
