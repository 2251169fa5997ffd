"""Retention benchmark: a simulated week under a disk bound, what it costs and what it keeps.

Runs the simulation of ``tests/integration/test_retention.py`` (a 1 M events/s service scaled
down by
``--scale``: 3.6e9 / scale events a simulated hour, one segment an hour, a retention pass
after each segment with the real checkpoint fold) and prints: the largest size the log
directory reached against the bound, the size of the same week without retention, the
segments retired, the CPU seconds of the retention passes (fold, checkpoint, retire) and the
events they folded per CPU-second, and the time of a report over the retained log. There is
no tracemalloc or memray equivalent (neither keeps a log to trim), so no ratio is printed.

    .venv/bin/python bench/bench_retention.py [--scale 1000000] [--bound-mib 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    """Run the simulation once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        type=int,
        default=1_000_000,
        help="1 M events/s divided by this (default 10^6: 3,600 events/hour)",
    )
    parser.add_argument("--bound-mib", type=float, default=2.0)
    args = parser.parse_args()

    from unittest import mock

    from memscope.analyzers import broker_analysis
    from memscope.analyzers.runner import run_all
    from memscope.config import Settings
    from memscope.eventlog import log as log_module
    from memscope.eventlog import segments as _segments
    from memscope.eventlog.retention import RetentionPolicy, detail_window
    from tests.integration import test_retention as week

    week.EVENTS_PER_HOUR = max(2, 3_600_000_000 // args.scale)
    clock = week.Clock()
    fake = mock.Mock(time_ns=clock, monotonic=time.monotonic)
    fold_cpu = [0.0]
    real_fold = broker_analysis.checkpoint_fold

    def timed_fold(path: Path) -> object:
        start = time.process_time()
        params = real_fold(path)
        fold_cpu[0] += time.process_time() - start
        return params

    bound = int(args.bound_mib * 1024 * 1024)
    segment = max(64 * 1024, bound // 16)
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(log_module, "time", fake),
        mock.patch.object(_segments, "time", fake),
        mock.patch.object(week, "checkpoint_fold", timed_fold),
    ):
        root = Path(tmp)
        settings = Settings(segment_max_bytes=segment, log_retention_bytes=bound)
        start = time.process_time()
        sizes, passes = week.write_week(
            root / "kept" / "events", settings, clock, RetentionPolicy.from_settings(settings)
        )
        total_cpu = time.process_time() - start
        full, _ = week.write_week(
            root / "full" / "events", Settings(segment_max_bytes=segment), clock, None
        )
        import json

        manifest = json.loads((root / "kept" / "events" / "manifest.json").read_text())
        window = detail_window(manifest) or {"retired": {"segments": 0}}
        started = time.perf_counter()
        run_all(root / "kept", root / "kept" / "reports")
        report_s = time.perf_counter() - started
    events = week.HOURS * week.EVENTS_PER_HOUR
    print(
        f"simulated week: {week.HOURS} hourly segments, {events:,} events "
        f"(1 M events/s scaled by 1/{args.scale:,})"
    )
    print(
        f"bound {bound:,} B; log directory at most {max(sizes):,} B "
        f"({max(sizes) / bound:.0%} of the bound); without retention {max(full):,} B"
    )
    print(f"retired {window['retired']['segments']} of {week.HOURS} segments in {passes} passes")
    print(
        f"retention passes: {fold_cpu[0]:.2f} CPU s in all ({fold_cpu[0] / passes * 1000:.1f} "
        f"ms a pass; {events / fold_cpu[0] / 1e6:.2f} M events folded per CPU-second, "
        f"checkpoint writes included); writing + retention {total_cpu:.2f} CPU s"
    )
    print(f"memscope analyze over the retained log (all six reports): {report_s:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
