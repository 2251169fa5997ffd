"""``make bench``: every benchmark under bench/, one after another, quick by default.

Each script (every ``bench/bench_*.py``) runs as its own process with a timeout and prints
its own table (with the date, the machine and its load printed here first, so that a pasted
result says where it was measured); a summary (time and outcome of each) ends the run, and
the exit status is 1 if any benchmark failed or timed out. ``--quick`` (the default) gives
each small sizes, ``--moderate`` the larger ones below; pass ``--only tracer,broker`` to run
some of them. A new ``bench_<name>.py`` not listed below runs with its own defaults.

    python bench/run_all.py [--quick | --moderate] [--only NAMES] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (script, arguments) for ``--moderate``: minutes each on a 2-core machine.
BENCHES: dict[str, tuple[str, list[str]]] = {
    "tracer": ("bench_tracer.py", ["--repeat", "3"]),
    "api": ("bench_api.py", ["--repeat", "3"]),
    "native": ("bench_native.py", ["--repeat", "3"]),
    "broker": ("bench_broker.py", ["--events", "8388608", "--repeat", "2"]),
    "analyzers": ("bench_analyzers.py", ["--events", "10000000"]),
    "report": ("bench_report.py", ["--runs", "1"]),
    "fold": ("bench_fold.py", ["--events", "20000000"]),
    "exit": ("bench_exit.py", ["--events", "5000000,20000000"]),
    "footprint": ("bench_footprint.py", []),
}

#: name -> arguments for ``--quick`` (the default): well under a minute of work each.
QUICK: dict[str, list[str]] = {
    "tracer": ["--repeat", "1", "--scale", "0.3"],
    "api": ["--repeat", "2", "--scale", "0.2"],
    "native": ["--repeat", "1", "--scale", "0.3"],
    "broker": ["--quick"],
    "analyzers": ["--events", "2000000", "--compare", "20000"],
    "report": ["--runs", "1", "--allocs", "100000", "--vars", "100"],
    "fold": ["--events", "2000000", "--compare", "50000", "--repeat", "1"],
    "exit": ["--events", "1000000", "--no-steps"],
    "footprint": ["--iterations", "200000"],
}


@dataclass
class Outcome:
    """How one benchmark ended."""

    name: str
    status: str  # "ok", "failed (exit N)" or "timed out after N s"
    seconds: float


def discover() -> dict[str, str]:
    """Every ``bench_<name>.py`` here: name -> script (listed ones first, in their order)."""
    found = {p.stem.removeprefix("bench_"): p.name for p in sorted(HERE.glob("bench_*.py"))}
    return {**{n: BENCHES[n][0] for n in BENCHES if n in found}, **found}


def run_one(name: str, script: str, options: list[str], timeout: float) -> Outcome:
    """Run one benchmark script; its output goes straight to ours."""
    print(f"\n=== {name}: {script} {' '.join(options)}\n{machine()}", flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / script), *options], check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return Outcome(name, f"timed out after {timeout:.0f} s", time.monotonic() - started)
    status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
    return Outcome(name, status, time.monotonic() - started)


def machine() -> str:
    """One line naming the machine, the interpreter and the load now."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {platform.node()}; {cpu}, "
        f"{os.cpu_count()} cores; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; load average {load}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; 0 when every one succeeded, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (the default)")
    size.add_argument("--moderate", action="store_true", help="larger sizes (minutes each)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per benchmark")
    scripts = discover()
    parser.add_argument("--only", help=f"comma-separated: {', '.join(scripts)}")
    args = parser.parse_args(argv)
    names = list(scripts) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in scripts]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(scripts)}")
    sizes = {n: options for n, (_, options) in BENCHES.items()} if args.moderate else QUICK
    outcomes = [run_one(n, scripts[n], sizes.get(n, []), args.timeout) for n in names]
    print(f"\n=== summary ({'moderate' if args.moderate else 'quick'} sizes)")
    width = max(len(o.name) for o in outcomes)
    for outcome in outcomes:
        print(f"{outcome.name:<{width}}  {outcome.seconds:7.1f} s  {outcome.status}")
    failed = [f"{o.name} ({o.status})" for o in outcomes if o.status != "ok"]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} benchmarks succeeded")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
