"""What the per-batch checksums cost the broker and the readers (bench_broker's in-process row).

The broker's ingest path and the read side (:func:`bench_broker.run_in_process`: encode is
not timed; best CPU times of ``--repeat`` runs) measured twice in the same run: with the
checksums (each batch summed as it is written, every batch checked before it is read) and
with them switched off in this process (``ChecksumWriter.add`` a no-op, readers finding no
checksum file). No profiler has an equivalent (tracemalloc and memray keep no such log), so
the ratios are on/off.

    python bench/bench_integrity.py [--events N] [--source tracer|real|high] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_broker  # noqa: E402

from memscope.config import Settings  # noqa: E402
from memscope.eventlog import integrity  # noqa: E402


def _measure(envs: list[Any], settings: Settings, repeat: int, checksums: bool) -> dict[str, float]:
    add, read_records = integrity.ChecksumWriter.add, integrity.read_records
    if not checksums:
        integrity.ChecksumWriter.add = lambda self, start, end, rows: None  # type: ignore[method-assign]
        integrity.read_records = lambda segment: None  # type: ignore[assignment]
    try:
        return bench_broker.run_in_process(envs, settings, repeat)
    finally:
        integrity.ChecksumWriter.add = add  # type: ignore[method-assign]
        integrity.read_records = read_records  # type: ignore[assignment]


def main() -> int:
    """Print the ingest and read costs with and without checksums, and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4_194_304)
    parser.add_argument("--source", default="real", choices=("tracer", "real", "high"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    envs = bench_broker.envelopes(args.source, args.events)
    settings = Settings()  # the broker's defaults: rec1 chunks kept, lz4 segments
    on = _measure(envs, settings, args.repeat, checksums=True)
    off = _measure(envs, settings, args.repeat, checksums=False)
    print(f"{on['events']:,} {args.source} events, best of {args.repeat}")
    print(f"{'':22}{'checksums':>12}{'none':>12}{'ratio':>8}")
    ingest_on, ingest_off = on["cpu_s"] / on["events"] * 1e9, off["cpu_s"] / off["events"] * 1e9
    print(f"{'ingest ns/event':22}{ingest_on:12.1f}{ingest_off:12.1f}{ingest_on / ingest_off:8.3f}")
    print(
        f"{'read ns/event':22}{on['read_ns']:12.1f}{off['read_ns']:12.1f}"
        f"{on['read_ns'] / off['read_ns']:8.3f}"
    )
    print(f"{'bytes/event':22}{on['bytes_per_event']:12.3f}{off['bytes_per_event']:12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
