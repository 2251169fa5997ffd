"""``memscope query LOG "SQL"``: DuckDB SQL over a log's views.

Views: events, allocations, frees, lifetimes, processes, threads, variables, scopes, frames,
stacks, ffi, aggregates, producer_stats, producer_stats_latest, ingest (columns documented in
:mod:`memscope.analyzers.views`; the raw tables are ``raw_<table>``). Output: an aligned
table (default), CSV, JSON (an array of objects) or Parquet (``--output`` required). A query
that names ``allocations``, ``lifetimes`` or ``variables`` first matches the log's blocks
chunk by chunk (bounded memory) rather than sorting the whole log inside the query.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from memscope.errors import CliError

FORMATS = ("table", "csv", "json", "parquet")
#: Views read from the matched block state when a query names them.
_MATCHED = re.compile(r"\b(allocations|lifetimes)\b", re.IGNORECASE)
#: Views over the analysis state (:mod:`memscope.analyzers.state`, from its checkpoint).
_STATE = re.compile(
    r"\b(sites|live|peak_sites|timeline|lifetimes_hist|process_totals|"
    r"thread_totals|sizes|variables|state_\w+)\b",
    re.IGNORECASE,
)
#: Views that read the raw memory events (a chunk log's events are decoded into DuckDB for
#: them); internal ``_`` names are assumed to.
_RAW = re.compile(r"\b(events|raw_memory|frees)\b|(?<!\w)_\w", re.IGNORECASE)
_FETCH = 10_000


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def write_table(names: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    """An aligned text table with a header rule."""
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    out.write("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")
    out.write(f"({len(cells)} row{'s' if len(cells) != 1 else ''})\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as fh:
        yield fh


def open_or_fail(log: str, connect: Any, **kwargs: Any) -> Any:
    """``connect(log)``, turning an unreadable log into a :class:`CliError` naming it."""
    from memscope.config import SettingsError
    from memscope.eventlog.log import LogError

    try:
        return connect(log, **kwargs)
    except SettingsError:
        raise  # not the log's fault: main() reports it as a bad setting
    except (LogError, OSError, ValueError) as exc:
        name = getattr(log, "path", log)  # an open LogReader is named by its directory
        raise CliError(f"cannot read log {name}: {exc}") from None


def _say_window(log: str) -> None:
    """On stderr: the window raw-event views cover, when retention trimmed the log."""
    from memscope.analyzers.runner import retained_window
    from memscope.analyzers.views import open_reader

    window = retained_window(open_or_fail(log, open_reader))
    if window:
        print(
            f"memscope query: note: retention retired {window['retired']['segments']} older "
            f"memory segments; raw-event views cover {window['from']} to {window['to']} "
            "only (the state_* tables cover the whole run)",
            file=sys.stderr,
        )


def report_problems(verb: str, problems: list[str]) -> int:
    """Name each problem of the log on stderr; the exit status (1 with problems, else 0)."""
    for problem in problems:
        print(f"memscope {verb}: damaged log: {problem}", file=sys.stderr)
    if problems:
        print(f"memscope {verb}: the result covers every intact batch of the log", file=sys.stderr)
    return 1 if problems else 0


def run_query(
    log: str, sql: str, fmt: str, output: str | None, problems: list[str] | None = None
) -> int:
    """Run ``sql`` over ``log`` and write the result in ``fmt``; return the row count.

    ``problems`` (when given) gains what of the log could not be read (damaged batches,
    missing segments): the result covers everything else.
    """
    import duckdb

    from memscope.analyzers.views import connect, open_reader

    if fmt == "parquet" and not output:
        raise CliError("--format parquet needs --output FILE")
    from memscope.commands.progress import StatusLine

    # A query of block views: match blocks chunk by chunk (bounded memory) instead of one
    # window per query, in the pass that fills raw_memory (each event decoded once); the raw
    # events only when the query reads them.
    if _RAW.search(sql) or _MATCHED.search(sql):
        _say_window(log)
    with StatusLine("query") as line:
        log_reader = open_or_fail(log, open_reader)
        con = open_or_fail(
            log_reader,
            connect,
            matched=bool(_MATCHED.search(sql)),
            raw_memory=bool(_RAW.search(sql)),
            on_events=lambda n: line.show(f"read {n:,} memory events"),
        )
        if _STATE.search(sql):
            from memscope.analyzers.state import open_state
            from memscope.analyzers.views import use_state

            use_state(con, open_state(log_reader, on_events=line.folded).tables())
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            relation = con.sql(sql)
            if relation is None:
                return 0
            reader = relation.to_arrow_reader()
            count = 0
            with pq.ParquetWriter(str(output), reader.schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    count += batch.num_rows
            return count
        cursor = con.execute(sql)
        if cursor.description is None:
            return 0
        names = [d[0] for d in cursor.description]
        with _output(output) as out:
            return _write_rows(cursor, names, fmt, out)
    except duckdb.Error as exc:
        raise CliError(f"query failed: {exc}") from None
    finally:
        con.close()
        if problems is not None:
            problems += log_reader.problems


def _write_rows(cursor: Any, names: list[str], fmt: str, out: TextIO) -> int:
    count = 0
    if fmt == "table":
        rows = cursor.fetchall()
        write_table(names, rows, out)
        return len(rows)
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(names)
        while batch := cursor.fetchmany(_FETCH):
            writer.writerows([[_cell(v) for v in r] for r in batch])
            count += len(batch)
        return count
    out.write("[")
    while batch := cursor.fetchmany(_FETCH):
        for r in batch:
            out.write(",\n" if count else "\n")
            out.write(json.dumps({n: _json_value(v) for n, v in zip(names, r, strict=True)}))
            count += 1
    out.write("\n]\n" if count else "]\n")
    return count


class QueryCommand:
    """The ``query`` verb."""

    name = "query"
    help = "DuckDB SQL over a log"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare LOG, SQL, --format and --output."""
        parser.add_argument("log", metavar="LOG", help="a run directory or its events/ directory")
        parser.add_argument(
            "sql",
            metavar="SQL",
            help="the query (views: events, allocations, "
            "frees, lifetimes, processes, threads, variables, scopes, frames, "
            "stacks, ffi, aggregates, producer_stats, ingest)",
        )
        parser.add_argument(
            "--format", choices=FORMATS, default="table", help="output format (default: table)"
        )
        parser.add_argument(
            "--output",
            "-o",
            metavar="FILE",
            help="write here instead of stdout (required for parquet)",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Run the query; 0 on success."""
        problems: list[str] = []
        run_query(args.log, args.sql, args.format, args.output, problems)
        return report_problems("query", problems)


COMMAND = QueryCommand()
