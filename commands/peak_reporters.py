"""What the terminal reporters (``table``, ``tree``, ``summary``) share: options and loading."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from memscope.analyzers.peak_report import MOMENTS, Site


def add_common(parser: argparse.ArgumentParser) -> None:
    """LOG, ``--at``, ``--pid`` and ``--json``."""
    parser.add_argument("log", metavar="LOG", help="a run directory or its events/ directory")
    parser.add_argument(
        "--at",
        choices=MOMENTS,
        default="peak",
        help="the moment shown: the peak of memory (default) or the end of "
        "the log (what was still alive)",
    )
    parser.add_argument("--pid", type=int, default=None, help="only this process (at its own peak)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


@dataclass
class Loaded:
    """A log's sites at the chosen moment, with what is needed to describe them."""

    con: Any
    sites: list[Site]
    programs: dict[int, str]
    resolver: Any

    def close(self) -> None:
        """Close the connection."""
        self.con.close()


def load(args: argparse.Namespace, verb: str) -> Loaded:
    """Fold the log (progress on a terminal) and read its sites at ``args.at``."""
    from memscope.analyzers.peak_report import program_names, sites_at
    from memscope.analyzers.runner import connect_analyzed
    from memscope.analyzers.stacks import resolver
    from memscope.analyzers.views import open_reader
    from memscope.commands.progress import StatusLine
    from memscope.commands.query import open_or_fail
    from memscope.errors import CliError

    with StatusLine(verb) as line:
        reader = open_or_fail(args.log, open_reader)
        con = open_or_fail(reader, connect_analyzed, on_events=line.folded)
        line.show("reading the sites")
        programs = program_names(con)
        if args.pid is not None and args.pid not in programs:
            known = ", ".join(str(p) for p in programs) or "none"
            con.close()
            raise CliError(
                f"memscope {verb}: no process {args.pid} in {args.log} (processes: {known})"
            )
        sites = sites_at(con, args.at, args.pid)
        line.show("resolving stacks")
        return Loaded(con, sites, programs, resolver(con))


def heading(loaded: Loaded, args: argparse.Namespace) -> str:
    """``at the peak of process 12 (app.py)`` / ``at the end of the log``."""
    if args.pid is not None:
        name = loaded.programs.get(args.pid, "")
        who = f"process {args.pid}" + (f" ({name})" if name else "")
    else:
        who = "all processes" if len(loaded.programs) > 1 else "the log"
    return f"at the {'peak' if args.at == 'peak' else 'end'} of {who}"
