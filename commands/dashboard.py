"""``memscope dashboard DIR``: the dashboard as one offline file, or served with live updates.

Without ``--serve`` it writes ``DIR/dashboard.html`` (or ``--output``). With ``--serve`` it
serves the page on ``--host`` (default 127.0.0.1) and ``--port`` (default 8080), a REST API per
analysis file, and server-sent events whenever the files change; ``--feed ADDR`` also listens
to a broker's PUB socket so refreshes follow the log at once. Beyond loopback a token is
required: ``--token`` (or ``MEMSCOPE_DASHBOARD_TOKEN``), else one is generated and printed in
the URL, as Jupyter does; ``--allow-host NAME`` adds a name the Host header may carry.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from memscope.errors import CliError


class DashboardCommand:
    """The ``dashboard`` verb."""

    name = "dashboard"
    help = "the dashboard, as a file or served with a REST API and live updates"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """DIR, --output, --serve, --host, --port, --feed, --poll."""
        parser.add_argument(
            "directory",
            metavar="DIR",
            type=Path,
            help="a directory holding the analysis JSON files",
        )
        parser.add_argument(
            "--output",
            "-o",
            type=Path,
            default=None,
            help="the HTML file to write (default: DIR/dashboard.html)",
        )
        parser.add_argument("--serve", action="store_true", help="serve instead of writing")
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)"
        )
        parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any)")
        parser.add_argument(
            "--feed", default=None, help="a broker PUB address to follow for live updates"
        )
        parser.add_argument(
            "--poll",
            type=float,
            default=0.5,
            help="seconds between checks of the files (default 0.5)",
        )
        parser.add_argument(
            "--token",
            default=os.environ.get("MEMSCOPE_DASHBOARD_TOKEN"),
            help="the access token (default: $MEMSCOPE_DASHBOARD_TOKEN; "
            "generated when serving beyond loopback)",
        )
        parser.add_argument(
            "--allow-host",
            action="append",
            default=[],
            metavar="NAME",
            help="another name the Host header may carry (repeatable)",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Write the page, or serve it until interrupted."""
        directory: Path = args.directory
        if not directory.is_dir():
            raise CliError(f"{directory}: not a directory")
        if args.serve:
            return serve(
                directory,
                args.host,
                args.port,
                args.feed,
                args.poll,
                token=args.token or None,
                allow_hosts=args.allow_host,
            )
        return write(directory, args.output or directory / "dashboard.html")


def write(directory: Path, output: Path) -> int:
    """Write the static dashboard; missing files become messages inside it."""
    from memscope.exporters import find_reports, load_reports
    from memscope.exporters.dashboard_html import DashboardHtml

    if not find_reports(directory):
        print(
            f"memscope dashboard: warning: no analysis files in {directory}; every panel "
            "will say so",
            file=sys.stderr,
        )
    reports = load_reports(directory)
    exporter = DashboardHtml()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("wb") as fh:
        exporter.render(exporter.build(reports), fh)
    tmp.replace(output)
    print(output)
    return 0


def serve(
    directory: Path,
    host: str,
    port: int,
    feed: str | None,
    poll: float,
    token: str | None = None,
    allow_hosts: list[str] | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM."""
    from memscope.exporters.dashboard_server import DashboardServer

    try:
        server = DashboardServer(
            directory,
            host=host,
            port=port,
            poll_interval=poll,
            feed=feed,
            token=token,
            allow_hosts=allow_hosts or (),
        )
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if server.token is not None and token is None:
        print(
            "memscope dashboard: serving beyond loopback: a token is required; open the URL "
            "below (it carries the token)",
            file=sys.stderr,
        )
    done = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    server.start()
    print(f"memscope dashboard: serving {directory} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


COMMAND = DashboardCommand()
