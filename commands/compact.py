"""``memscope compact LOG [--out DIR]``: copy a log's tables to Parquet for other engines.

Writes ``DIR/<table>.parquet`` for every table (zstd), streaming record batches so a large
log is never loaded whole (``memory.parquet`` holds every memory event, the chunks the
broker stored decoded into columns; there is no ``memory_chunks.parquet``), plus
``DIR/compact.json`` naming the source log id and the row
count of every file. Default DIR: ``parquet/`` in the run directory.

``memscope compact LOG --dataset ROOT`` writes the fleet dataset instead: every table
Hive-partitioned by host, date and pid, into which the logs of many brokers merge
(:mod:`memscope.analyzers.dataset`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from memscope.errors import CliError


def compact(log: str, out_dir: Path | None = None) -> dict[str, Any]:
    """Write the Parquet copy; return what ``compact.json`` holds."""
    import pyarrow.parquet as pq

    from memscope.analyzers.runner import default_out_dir
    from memscope.analyzers.views import open_reader
    from memscope.commands.query import open_or_fail
    from memscope.protocol.log_schema import TABLES

    reader = open_or_fail(log, open_reader)
    out = out_dir or default_out_dir(log) / "parquet"
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name, schema in TABLES.items():
        if name == "memory_chunks":
            continue  # decoded into memory.parquet
        target = out / f"{name}.parquet"
        tmp = target.with_name(f".{target.name}.tmp")
        rows = 0
        batches = reader.memory_batches() if name == "memory" else reader.dataset(name).to_batches()
        with pq.ParquetWriter(str(tmp), schema, compression="zstd") as writer:
            for batch in batches:
                if batch.num_rows:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        tmp.replace(target)
        counts[name] = rows
    info = {
        "source_log_id": reader.log_id,
        "tables": counts,
        "problems": list(getattr(reader, "problems", [])),
    }
    (out / "compact.json").write_text(json.dumps(info, indent=2) + "\n")
    return {**info, "out_dir": str(out)}


class CompactCommand:
    """The ``compact`` verb."""

    name = "compact"
    help = "copy a log to Parquet for other engines"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare LOG and --out."""
        parser.add_argument("log", metavar="LOG", help="a run directory or its events/ directory")
        target = parser.add_mutually_exclusive_group()
        target.add_argument(
            "--out",
            metavar="DIR",
            type=Path,
            help="where the Parquet files go (default: RUN/parquet)",
        )
        target.add_argument(
            "--dataset",
            metavar="ROOT",
            type=Path,
            help="merge into a Hive-partitioned dataset (host, date, pid) shared by many logs",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Write the files; 0 on success, 1 when the log reported damaged segments."""
        import pyarrow as pa

        target = args.dataset if args.dataset is not None else args.out
        try:
            if args.dataset is not None:
                from memscope.analyzers.dataset import write_dataset
                from memscope.analyzers.views import open_reader
                from memscope.commands.query import open_or_fail

                info = write_dataset(open_or_fail(args.log, open_reader), args.dataset)
            else:
                info = compact(args.log, args.out)
        except (OSError, pa.ArrowException) as exc:
            where = target or "the run directory"
            raise CliError(
                f"cannot write {where}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        total = sum(info["tables"].values())
        if args.dataset is not None:
            print(
                f"{total} rows of {len(info['tables'])} tables merged into the dataset "
                f"{info['out_dir']} (log {info['source_log_id']})"
            )
        else:
            print(f"{total} rows in {len(info['tables'])} Parquet files in {info['out_dir']}")
        for problem in info["problems"]:
            print(f"memscope compact: damaged log: {problem}", file=sys.stderr)
        if info["problems"]:
            raise CliError("the log has damaged segments (their complete batches were copied)", 1)
        return 0


COMMAND = CompactCommand()
