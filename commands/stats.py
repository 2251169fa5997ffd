"""``memscope stats LOG``: the headline numbers of a log in the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from memscope.commands.query import open_or_fail, write_table
from memscope.units import human_bytes

_COLUMNS = (
    ("pid", "pid"),
    ("argv", "program"),
    ("mode", "mode"),
    ("active_memory", "active"),
    ("peak_memory", "peak"),
    ("active_allocations", "live blocks"),
    ("total_allocations", "allocations"),
    ("total_allocated", "allocated"),
    ("total_deallocations", "frees"),
    ("unmatched_frees", "unmatched frees"),
)


def collect(log: str, on_events: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Totals for the whole log and per process, plus ingest counters.

    ``on_events`` is called with the events folded so far while the state is brought up to
    date (progress).
    """
    from memscope.analyzers.common import rows
    from memscope.analyzers.memstats import process_stats
    from memscope.analyzers.runner import connect_analyzed, retained_window
    from memscope.analyzers.views import open_reader

    reader = open_or_fail(log, open_reader)
    con = open_or_fail(reader, connect_analyzed, on_events=on_events)
    try:
        processes = {r["pid"]: r for r in rows(con, "SELECT * FROM processes ORDER BY pid")}
        pids = [
            r[0]
            for r in con.execute(
                "SELECT pid FROM processes UNION SELECT pid FROM state_processes ORDER BY pid"
            ).fetchall()
        ]
        per = []
        for pid in pids:
            info = processes.get(pid, {})
            per.append(
                {
                    "pid": pid,
                    "argv": info.get("argv"),
                    "mode": info.get("mode"),
                    **process_stats(con, pid),
                }
            )
        return {
            "total": process_stats(con),
            "processes": per,
            "ingest": rows(
                con,
                "SELECT producer, pid, batches, events, gaps, duplicates, "
                "rejected, rejected_rows, refused FROM ingest ORDER BY producer",
            ),
            # why messages or rows were rejected, or batches refused (a log it could not write)
            "ingest_problems": rows(
                con,
                "SELECT producer, problem FROM ingest WHERE problem IS NOT NULL ORDER BY producer",
            ),
            # After the matching: chunks that did not decode are among them.
            "log_problems": list(reader.problems),
            # Retention: the memory events kept raw (None: all of them).
            "detail_window": retained_window(reader),
        }
    finally:
        con.close()


def _figure(stats: dict[str, Any], key: str, text: str) -> str:
    """``text``, marked ``~`` when ``stats`` only estimates ``key`` (sampled mode)."""
    return f"~{text}" if stats.get("estimated") and key in stats.get("estimated_keys", ()) else text


def _source(stats: dict[str, Any], key: str) -> str:
    source = stats.get(f"{key}_source")
    return f" ({source})" if source and source != "log" else ""


def _print_total(t: dict[str, Any], out: Any) -> None:
    est = " estimated" if t.get("estimated") else ""
    out.write(
        f"active memory     {_figure(t, 'active_memory', human_bytes(t['active_memory']))} "
        f"in {_figure(t, 'active_allocations', str(t['active_allocations']))} blocks"
        f"{_source(t, 'active_memory')}\n"
    )
    out.write(
        f"peak memory       {_figure(t, 'peak_memory', human_bytes(t['peak_memory']))}"
        f"{_source(t, 'peak_memory')}\n"
    )
    out.write(
        f"allocations       {_figure(t, 'total_allocations', str(t['total_allocations']))} "
        f"({_figure(t, 'total_allocated', human_bytes(t['total_allocated']))}){est}\n"
    )
    n_free = _figure(t, "total_deallocations", str(t["total_deallocations"]))
    out.write(
        f"deallocations     {n_free}"
        f" ({_figure(t, 'total_freed', human_bytes(t['total_freed']))}){est}\n"
    )
    samples = t.get("samples")
    if samples:
        rates = ", ".join(human_bytes(b) for b in t.get("sample_bytes", []))
        out.write(
            f"samples           {samples['allocations']} sampled allocations "
            f"({human_bytes(samples['allocated'])}), {samples['deallocations']} sampled "
            f"frees; one sample per {rates} allocated on average (~ = estimated from "
            f"them)\n"
        )
    out.write(
        f"unmatched frees   {t['unmatched_frees']} (of blocks the log never saw allocated; "
        f"ignored in the totals)\n\n"
    )


def _print_window(window: dict[str, Any] | None, out: Any) -> None:
    if not window:
        return
    retired = window["retired"]
    kept = (
        f"from {window['from']} to {window['to']}"
        if window.get("from")
        else "none (every memory segment was retired)"
    )
    out.write(
        f"full detail       {kept}; {retired['segments']} older segments "
        f"({retired['events']} events, {human_bytes(retired['bytes'])}, "
        f"{window.get('retired_from')} to {window.get('retired_to')}) were retired by "
        f"retention: the figures cover the whole run, raw-event queries this window\n"
    )


def print_stats(stats: dict[str, Any], out: Any) -> None:
    """The human-readable form."""
    _print_total(stats["total"], out)
    _print_window(stats.get("detail_window"), out)
    table = []
    for p in stats["processes"]:
        row = []
        for key, _ in _COLUMNS:
            value = p.get(key)
            if key == "argv":
                value = " ".join(value or [])[:40]
            elif key in ("active_memory", "peak_memory", "total_allocated"):
                value = None if value is None else human_bytes(value)
            if key == "peak_memory" and p.get("peak_memory_source", "log") != "log":
                value = f"{value} (measured)"
            row.append(_figure(p, key, str(value)) if value is not None else value)
        table.append(row)
    write_table([label for _, label in _COLUMNS], table, out)
    if stats["ingest"]:
        out.write("\n")
        write_table(list(stats["ingest"][0]), [list(r.values()) for r in stats["ingest"]], out)
    for row in stats.get("ingest_problems", ()):
        out.write(f"ingest: {row['producer']}: {row['problem']}\n")
    for problem in stats.get("log_problems", ()):
        out.write(f"damaged log: {problem}\n")


class StatsCommand:
    """The ``stats`` verb."""

    name = "stats"
    help = "the headline numbers of a log"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare LOG and --json."""
        parser.add_argument("log", metavar="LOG", help="a run directory or its events/ directory")
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")

    def run(self, args: argparse.Namespace) -> int:
        """Print the numbers; 0 on success, 1 when part of the log could not be read."""
        from memscope.commands.progress import StatusLine

        with StatusLine("stats") as line:
            stats = collect(args.log, on_events=line.folded)
        if args.json:
            json.dump(stats, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print_stats(stats, sys.stdout)
        return 1 if stats["log_problems"] else 0  # each is printed (text) or listed (--json)


COMMAND = StatsCommand()
