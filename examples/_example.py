"""What every example shares: the ``--size`` option and the closing report.

Run an example either way:

* ``memscope run examples/basic_usage.py`` -- memscope traces the script (and every process it
  starts) and writes the six analysis files, both SVGs, the snapshot JSON and the dashboard
  into ``MemoryAnalysis/<script>-<time>/``. The script's own ``memscope.init()`` is then a
  no-op and it skips its exports (``memscope run`` writes them all).
* ``python examples/basic_usage.py`` -- the script's ``memscope.init()`` starts tracing with an
  embedded broker, and :func:`finish` calls the tracker's export methods, as the seed's
  examples do, into ``MemoryAnalysis/<example>/``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import memscope

#: ``memscope run`` sets this in the traced program's environment (its bootstrap directory).
_UNDER_RUN = "MEMSCOPE_BOOTSTRAP_DIR"


def parse_args(description: str) -> argparse.Namespace:
    """``--size N`` (a scale factor, 1 = a quick demo) and ``--no-export``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--size",
        type=int,
        default=1,
        metavar="N",
        help="scale the workload by N (default 1: a quick run; try 10 or 100)",
    )
    parser.add_argument(
        "--no-export",
        action="store_true",
        help="standalone runs: print the stats but write no reports",
    )
    args = parser.parse_args()
    if args.size < 1:
        parser.error("--size must be at least 1")
    return args


def under_memscope_run() -> bool:
    """True when this process was started by ``memscope run`` (which writes the reports)."""
    return _UNDER_RUN in os.environ


def print_stats(title: str) -> memscope.MemoryStats:
    """Print this process's exact totals so far (measured from its events in the log)."""
    stats = memscope.get_global_tracker().get_stats()
    print(f"{title}:")
    print(
        f"  active memory:      {stats.active_memory:>12,} bytes "
        f"in {stats.active_allocations:,} blocks"
    )
    print(f"  peak memory:        {stats.peak_memory:>12,} bytes")
    print(
        f"  total allocations:  {stats.total_allocations:>12,} "
        f"({stats.total_allocated:,} bytes), {stats.total_deallocations:,} freed"
    )
    return stats


def finish(prefix: str, args: argparse.Namespace) -> None:
    """Export the seed's three reports (standalone runs only) and say where they are."""
    if under_memscope_run():
        print("memscope run writes the analysis files, SVGs and dashboard when the program ends.")
        return
    if args.no_export:
        return
    out = Path("MemoryAnalysis") / prefix
    tracker = memscope.get_global_tracker()
    written = [
        tracker.export_memory_analysis(out / f"{prefix}_memory_analysis.svg"),
        tracker.export_lifecycle_timeline(out / f"{prefix}_lifecycle_timeline.svg"),
        tracker.export_to_json(out / f"{prefix}_memory_snapshot.json"),
    ]
    print("Reports written:")
    for path in written:
        print(f"  {path}")
