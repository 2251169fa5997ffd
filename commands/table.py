"""``memscope table LOG``: where the memory alive at the peak (or the end) was allocated.

One row per process, innermost frame (``function (file:line)``) and allocator domain, largest
first.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from memscope.commands.peak_reporters import add_common, heading, load


class TableCommand:
    """The ``table`` verb (memray's ``table``, in the terminal)."""

    name = "table"
    help = "the allocation sites alive at the peak, largest first"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """LOG, ``--at``, ``--pid``, ``--json``, ``-n``."""
        add_common(parser)
        parser.add_argument(
            "-n", "--limit", type=int, default=30, help="rows shown (default 30; 0: all)"
        )

    def run(self, args: argparse.Namespace) -> int:
        """Print the table; 0 on success."""
        from rich.markup import escape
        from rich.text import Text

        from memscope.analyzers.peak_report import innermost
        from memscope.commands.terminal import console, share
        from memscope.commands.terminal import table as new_table
        from memscope.units import human_bytes

        loaded = load(args, "table")
        try:
            total = sum(s.bytes for s in loaded.sites)
            # Stacks that end in the same line are one row, as a reader expects.
            grouped: dict[tuple[int, str, str], dict[str, Any]] = {}
            for s in loaded.sites:
                where = innermost(loaded.resolver, s)
                row = grouped.setdefault(
                    (s.pid, where, s.domain),
                    {
                        "pid": s.pid,
                        "bytes": 0,
                        "blocks": 0,
                        "stacks": 0,
                        "domain": s.domain,
                        "location": where,
                    },
                )
                row["bytes"] += s.bytes
                row["blocks"] += s.blocks
                row["stacks"] += 1
        finally:
            loaded.close()
        ordered = sorted(
            grouped.values(), key=lambda r: (-r["bytes"], r["pid"], r["location"], r["domain"])
        )
        rows = ordered if args.limit <= 0 else ordered[: args.limit]
        shown = rows
        if args.json:
            json.dump(
                {
                    "at": args.at,
                    "pid": args.pid,
                    "total_bytes": total,
                    "locations": len(ordered),
                    "rows": rows,
                },
                sys.stdout,
                indent=2,
            )
            sys.stdout.write("\n")
            return 0
        out = console()
        table = new_table(
            out,
            escape(
                f"memory {heading(loaded, args)}: {human_bytes(total)} in {len(ordered)} locations"
            ),
        )
        table.add_column("size", justify="right", style="bold magenta")
        table.add_column("share", justify="right")
        table.add_column("blocks", justify="right")
        table.add_column("domain")
        if len(loaded.programs) > 1:
            table.add_column("pid", justify="right")
        table.add_column("location", style="cyan", overflow="fold")
        for row in rows:
            cells = [
                human_bytes(row["bytes"]),
                share(row["bytes"], total),
                f"{row['blocks']:,}",
                row["domain"],
            ]
            if len(loaded.programs) > 1:
                cells.append(str(row["pid"]))
            table.add_row(*cells, Text(str(row["location"])))  # Text: never markup
        out.print(table)
        if len(shown) < len(ordered):
            out.print(f"({len(ordered) - len(shown)} smaller locations not shown; -n 0 shows all)")
        return 0


COMMAND = TableCommand()
