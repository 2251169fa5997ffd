"""From a traced program's exit to every report written, at 5 M and 20 M events.

    python bench/bench_exit.py [--events 5000000,20000000] [--repeat 1] [--no-memray]
                               [--no-steps] [--timings]

The program allocates a small ``bytearray`` per iteration (one in 16 kept), about 5.9
memory events an iteration. memscope: ``memscope run`` (embedded broker, then the six
analysis files, both SVGs, the snapshot JSON and the dashboard); the time after exit is
``memscope run``'s return minus the program's exit as the log records it (its ``processes``
row, CLOCK_MONOTONIC). memray: ``memray run`` of the same program, then ``memray stats`` and
``memray flamegraph`` of its capture; its time after exit is from the program's exit (it
prints its monotonic clock last) to the flame graph written. Then, from the memscope log
alone, each step of the reporting is timed apart (state from nothing, analyzers, each
exporter) to show where the time goes.

Goals (issue 12): <= 2 s for 5 M events, <= 10 s for 20 M.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import memray_reports

EVENTS_PER_ITERATION = 5.88
GOALS = {5_000_000: 2.0, 20_000_000: 10.0}

PROGRAM = """
import sys, time
n = int(sys.argv[1])
keep = []
for i in range(n):
    b = bytearray(16 + (i % 64))
    if i % 16 == 0:
        keep.append(b)
print("EXIT", time.monotonic_ns(), flush=True)
"""

_STEPS = """
import json, sys, time
from pathlib import Path
run = Path(sys.argv[1])
steps = []
t = time.perf_counter()
from memscope.analyzers.state import open_state
from memscope.analyzers.views import open_reader
from memscope.analyzers import run_all
from memscope.exporters import EXPORTERS, exporter, load_reports
steps.append(("imports", time.perf_counter() - t))
t = time.perf_counter()
open_state(open_reader(run / "events"))
steps.append(("analysis state from nothing (fold of the log)", time.perf_counter() - t))
t = time.perf_counter()
run_all(run / "events", run)
steps.append(("six analysis files (from the checkpoint)", time.perf_counter() - t))
reports = load_reports(run)
for module, cls in EXPORTERS:
    exp = exporter(module, cls)
    t = time.perf_counter()
    obj = exp.build(reports)
    with open(run / exp.filename, "wb") as fh:
        exp.render(obj, fh)
    steps.append((exp.filename, time.perf_counter() - t))
print("STEPS " + json.dumps(steps))
"""


def memscope_run(work: Path, n: int, timings: bool = False) -> dict:
    """``memscope run`` of the program: seconds after exit, events, run dir, step times."""
    out = work / f"ms-{n}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, MEMSCOPE_TIMINGS="1") if timings else None
    proc = subprocess.run(
        [sys.executable, "-m", "memscope", "run", "--out", str(out), str(work / "prog.py"), str(n)],
        capture_output=True,
        text=True,
        timeout=3600,
        env=env,
    )
    returned = time.monotonic_ns()
    if proc.returncode:
        raise RuntimeError(f"memscope run failed:\n{proc.stderr[-2000:]}")
    exited = _exit_ns(proc.stdout)
    events = _events(out)
    marks = [
        (int(ns), f"{name} [{pid}]")
        for _, ns, pid, name in (
            line.split(" ", 3)
            for line in proc.stderr.splitlines()
            if line.startswith("memscope-timing ")
        )
    ]
    marks.append((returned, "memscope run returned"))
    return {
        "after_exit_s": (returned - exited) / 1e9,
        "events": events,
        "dir": out,
        "marks": [((ns - exited) / 1e9, name) for ns, name in sorted(marks)],
    }


def memray_run(work: Path, n: int) -> float:
    """Seconds from the program's exit to ``memray stats`` and ``flamegraph`` written."""
    capture = work / f"memray-{n}.bin"
    capture.unlink(missing_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memray",
            "run",
            "-q",
            "-f",
            "-o",
            str(capture),
            str(work / "prog.py"),
            str(n),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    exited = _exit_ns(proc.stdout)
    memray_reports(capture)
    return (time.monotonic_ns() - exited) / 1e9


def steps(run: Path) -> list[tuple[str, float]]:
    """Each reporting step timed apart, from the log alone (checkpoint removed first)."""
    shutil.rmtree(run / "events" / "_state", ignore_errors=True)
    proc = subprocess.run(
        [sys.executable, "-c", _STEPS, str(run)], capture_output=True, text=True, timeout=3600
    )
    for line in proc.stdout.splitlines():
        if line.startswith("STEPS "):
            return [(str(a), float(b)) for a, b in json.loads(line[6:])]
    raise RuntimeError(f"steps failed:\n{proc.stderr[-2000:]}")


def _exit_ns(stdout: str) -> int:
    for line in stdout.splitlines():
        if line.startswith("EXIT "):
            return int(line.split()[1])
    raise RuntimeError(f"the program printed no EXIT line:\n{stdout[-500:]}")


def _events(run: Path) -> int:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "query",
            str(run),
            "SELECT sum(events) AS n FROM ingest",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    try:
        return int(json.loads(proc.stdout)[0]["n"])
    except (ValueError, KeyError, IndexError, TypeError):
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="5000000,20000000")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-memray", action="store_true")
    parser.add_argument("--no-steps", action="store_true")
    parser.add_argument(
        "--timings",
        action="store_true",
        help="print when each step of the best run ended (MEMSCOPE_TIMINGS)",
    )
    args = parser.parse_args()
    print(
        f"# bench_exit {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="memscope-exit-") as tmp:
        work = Path(tmp)
        (work / "prog.py").write_text(PROGRAM)
        for target in (int(x) for x in args.events.split(",")):
            n = int(target / EVENTS_PER_ITERATION)
            runs = [memscope_run(work, n, args.timings) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["after_exit_s"])
            median = statistics.median(r["after_exit_s"] for r in runs)
            goal = GOALS.get(target)
            line = (
                f"{best['events']:>12,} events: memscope exit -> every report "
                f"{best['after_exit_s']:6.2f} s best, {median:.2f} s median (runs: "
                + ", ".join(f"{r['after_exit_s']:.2f}" for r in runs)
                + ")"
            )
            if goal:
                met = "met" if best["after_exit_s"] <= goal else "NOT met"
                line += f", goal {goal:.0f} s: {met}"
            print(line)
            if args.timings:
                for seconds, name in best["marks"]:
                    print(f"{'':>20}   after exit {seconds:+7.3f} s  {name}")
            if not args.no_memray:
                memray_s = min(memray_run(work, n) for _ in range(args.repeat))
                print(
                    f"{'':>20} memray exit -> stats + flamegraph {memray_s:6.2f} s; "
                    f"memscope / memray = {best['after_exit_s'] / memray_s:.2f}"
                )
            if not args.no_steps:
                for name, seconds in steps(best["dir"]):
                    print(f"{'':>20}   {name:48} {seconds:6.2f} s")
            for r in runs:
                shutil.rmtree(r["dir"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
