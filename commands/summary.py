"""``memscope summary LOG``: the functions that held the most memory at the peak."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from memscope.commands.peak_reporters import add_common, heading, load


class SummaryCommand:
    """The ``summary`` verb (memray's ``summary``)."""

    name = "summary"
    help = "the functions that held the most memory at the peak"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """LOG, ``--at``, ``--pid``, ``--json``, ``-n``."""
        add_common(parser)
        parser.add_argument(
            "-n", "--limit", type=int, default=20, help="rows shown (default 20; 0: all)"
        )

    def run(self, args: argparse.Namespace) -> int:
        """Print the summary; 0 on success."""
        from memscope.analyzers.peak_report import summarize

        loaded = load(args, "summary")
        try:
            rows = summarize(loaded.sites, loaded.resolver)
        finally:
            loaded.close()
        total = sum(s.bytes for s in loaded.sites)
        shown = rows if args.limit <= 0 else rows[: args.limit]
        if args.json:
            json.dump(
                {
                    "at": args.at,
                    "pid": args.pid,
                    "total_bytes": total,
                    "functions": len(rows),
                    "rows": [asdict(r) for r in shown],
                },
                sys.stdout,
                indent=2,
            )
            sys.stdout.write("\n")
            return 0
        from rich.markup import escape
        from rich.text import Text

        from memscope.commands.terminal import console, share
        from memscope.commands.terminal import table as new_table
        from memscope.units import human_bytes

        out = console()
        table = new_table(out, escape(f"memory {heading(loaded, args)}: {human_bytes(total)}"))
        table.add_column("location", style="cyan", overflow="fold")
        table.add_column("total", justify="right", style="bold magenta")
        table.add_column("total %", justify="right")
        table.add_column("own", justify="right", style="magenta")
        table.add_column("own %", justify="right")
        table.add_column("blocks", justify="right")
        for r in shown:
            where = r.function if not r.filename else f"{r.function} at {r.filename}"
            table.add_row(
                Text(where),
                human_bytes(r.total),
                share(r.total, total),
                human_bytes(r.own),
                share(r.own, total),
                f"{r.blocks:,}",
            )
        out.print(table)
        if len(shown) < len(rows):
            out.print(f"({len(rows) - len(shown)} more functions; -n 0 shows all)")
        return 0


COMMAND = SummaryCommand()
