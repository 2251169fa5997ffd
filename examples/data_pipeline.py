"""A data-processing pipeline: load, parse, filter, format -- one named scope per stage.

    memscope run examples/data_pipeline.py
    python examples/data_pipeline.py [--size 10]

The counterpart of memscope-rs's data pipeline example. Each stage runs in a
``memscope.scope``, so the lifetime report totals memory per stage, and each stage's output
is tracked, so the timeline shows the earlier stages' data dying as the pipeline moves on.
"""

from __future__ import annotations

import struct

from _example import finish, parse_args, print_stats

import memscope


@memscope.scope("load")
def load(n_bytes: int) -> bytes:
    """Stage 1: raw input (deterministic bytes standing in for a file or a socket)."""
    raw_data = bytes(i * 31 % 251 for i in range(n_bytes))
    memscope.track_var(raw_data)
    return raw_data


@memscope.scope("parse")
def parse(raw_data: bytes) -> list[int]:
    """Stage 2: little-endian int32 records."""
    parsed_data = [value for (value,) in struct.iter_unpack("<i", raw_data)]
    memscope.track_var(parsed_data)
    return parsed_data


@memscope.scope("process")
def process(parsed_data: list[int]) -> list[int]:
    """Stage 3: keep the positive values, doubled."""
    processed_data = [x * 2 for x in parsed_data if x > 0]
    memscope.track_var(processed_data)
    return processed_data


@memscope.scope("report")
def report(processed_data: list[int]) -> list[str]:
    """Stage 4: one line of text per value."""
    results = [f"Result: {x}" for x in processed_data]
    memscope.track_var(results)
    return results


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    memscope.init()

    raw = load(64 * 1024 * args.size)  # 64 KiB of raw data per --size step
    parsed = parse(raw)
    del raw  # the raw bytes die once parsed
    processed = process(parsed)
    del parsed
    results = report(processed)
    print(
        f"pipeline: {len(processed):,} values kept, {len(results):,} result lines; "
        f"first: {results[0]!r}"
    )

    print_stats("Pipeline memory usage")
    finish("pipeline", args)


if __name__ == "__main__":
    main()
