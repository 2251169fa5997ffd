"""``memscope analyze LOG``: the six JSON files from a log.

``--jobs N`` runs the analyzers in N worker processes (after one shared block-matching pass);
``--only`` picks some of them; ``--follow`` keeps the files current while the log grows
(see :mod:`memscope.analyzers.follow`), and with ``--metrics-port`` serves Prometheus metrics
meanwhile (:mod:`memscope.analyzers.metrics`). Damaged segments are reported on stderr, naming each
file, and the results for everything readable are still written (exit code 1).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from memscope.errors import CliError


def _names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [n for v in values for n in v.split(",") if n.strip()]


def default_jobs() -> int:
    """Worker processes by default: one per core up to 6; 1 on machines of 2 cores or less."""
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(6, cores)


class AnalyzeCommand:
    """The ``analyze`` verb."""

    name = "analyze"
    help = "the six JSON files from a log"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare LOG, --only, --out, --base, --jobs, --follow, --interval, --quiet, metrics."""
        parser.add_argument("log", metavar="LOG", help="a run directory or its events/ directory")
        parser.add_argument(
            "--only",
            action="append",
            metavar="NAMES",
            help="comma-separated analyzers: memory, lifecycle, security, "
            "complex_types, performance, ffi (default: all)",
        )
        parser.add_argument(
            "--out",
            metavar="DIR",
            type=Path,
            help="where the files go (default: the run directory)",
        )
        parser.add_argument("--base", default="snapshot", help="file name prefix")
        parser.add_argument(
            "--jobs",
            "-j",
            type=int,
            default=default_jobs(),
            help="worker processes for the analyzers (default: the CPU count "
            "up to 6, but 1 on two cores or fewer, where one process "
            "running DuckDB on every core is faster)",
        )
        parser.add_argument(
            "--follow",
            action="store_true",
            help="keep the files current while the log grows (Ctrl-C stops)",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=2.0,
            help="--follow: seconds between checks for new segments",
        )
        parser.add_argument(
            "--quiet",
            "-q",
            action="store_true",
            help="no progress bar (there is none when stderr is not a "
            "terminal), no --follow round lines",
        )
        add_metrics_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        """Analyze; 0 on success, 1 when the log was damaged or an analyzer failed."""
        from memscope.analyzers.registry import select
        from memscope.analyzers.runner import AnalysisError, run_all
        from memscope.analyzers.views import open_reader
        from memscope.commands.progress import ProgressBar
        from memscope.commands.query import open_or_fail

        try:
            analyzers = select(_names(args.only))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        reader = open_or_fail(args.log, open_reader)
        if args.follow:
            return _follow(args)
        if args.metrics_port is not None:
            raise CliError("--metrics-port serves a follower's figures: add --follow")
        try:
            with ProgressBar(len(analyzers) + 1, "analyze", enabled=not args.quiet) as bar:
                written = run_all(
                    reader,
                    args.out,
                    base=args.base,
                    only=_names(args.only),
                    jobs=max(1, args.jobs),
                    progress=bar.step,
                    on_chunk=bar.folded,
                )
            failed = False
        except AnalysisError as exc:
            written, failed = exc.written, True
            for kind, trace in exc.failures.items():
                print(f"memscope analyze: {kind} failed:\n{trace}", file=sys.stderr)
        for path in written:
            print(path)
        for problem in reader.problems:
            print(f"memscope analyze: damaged log: {problem}", file=sys.stderr)
        if reader.problems:
            print(
                "memscope analyze: the files above cover every complete batch of the log",
                file=sys.stderr,
            )
        return 1 if failed or reader.problems else 0


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare --metrics-port, --metrics-host and --metrics-top-sites (with --follow)."""
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="--follow: serve Prometheus metrics at http://HOST:PORT/metrics "
        "(0: any free port, printed)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="--metrics-port: address to bind (default 127.0.0.1; any other "
        "makes the metrics network-facing)",
    )
    parser.add_argument(
        "--metrics-top-sites",
        type=int,
        metavar="K",
        help="--metrics-port: allocation sites exported per process, the K "
        "holding the most live bytes (default: the metrics_top_sites "
        "setting, 20)",
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _follow(args: argparse.Namespace) -> int:
    """``--follow``, serving metrics meanwhile when asked."""
    from memscope.analyzers.follow import follow

    def run(on_round: Any = None) -> int:
        # A service manager's stop (SIGTERM) ends it like Ctrl-C: the state is checkpointed.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return follow(
                args.log,
                args.out,
                base=args.base,
                only=_names(args.only),
                interval=args.interval,
                quiet=args.quiet,
                on_round=on_round,
            )
        finally:
            signal.signal(signal.SIGTERM, previous)

    if args.metrics_port is None:
        return run()
    from memscope.analyzers.metrics import FollowerMetrics, network_facing
    from memscope.config import load_settings

    top = (
        load_settings().metrics_top_sites
        if args.metrics_top_sites is None
        else args.metrics_top_sites
    )
    if top < 1 or not 0 <= args.metrics_port <= 65535:
        raise CliError("--metrics-top-sites must be at least 1 and --metrics-port 0-65535")
    try:
        metrics = FollowerMetrics(args.metrics_host, args.metrics_port, top)
    except OSError as exc:
        raise CliError(
            f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
            f"{exc.strerror or exc}; pick another --metrics-port (0: any free one)"
        ) from None
    if network_facing(args.metrics_host):
        print(
            f"memscope analyze: warning: metrics served on {args.metrics_host}, without "
            "authentication: anyone who can reach it can read the program names and "
            "source locations they carry",
            file=sys.stderr,
        )
    print(f"memscope analyze --follow: metrics at {metrics.url}", flush=True)
    try:
        return run(metrics.publish)
    finally:
        metrics.stop()


COMMAND = AnalyzeCommand()
