"""``make bench``: every benchmark under bench/, one after another, at a moderate size.

Each script runs as its own process and prints its own table (with the date, the machine and
its load printed here first, so that a pasted result says where it was measured). Pass
``--only tracer,broker`` to run some of them; the sizes are each script's options below.

    python bench/run_all.py [--only NAMES]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (script, arguments). Sizes chosen to finish in minutes on a 2-core machine.
BENCHES: dict[str, tuple[str, list[str]]] = {
    "tracer": ("bench_tracer.py", ["--repeat", "3"]),
    "api": ("bench_api.py", ["--repeat", "3"]),
    "native": ("bench_native.py", ["--repeat", "3"]),
    "broker": ("bench_broker.py", ["--events-per-producer", "1048576"]),
    "analyzers": ("bench_analyzers.py", ["--events", "10000000"]),
    "report": ("bench_report.py", ["--runs", "1"]),
}


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
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {platform.node()}; {cpu}, "
            f"{os.cpu_count()} cores; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; load average {load}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated: {', '.join(BENCHES)}")
    args = parser.parse_args()
    names = list(BENCHES) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(BENCHES)}")
    failed = []
    for name in names:
        script, options = BENCHES[name]
        print(f"\n=== {name}: {script} {' '.join(options)}\n{machine()}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script), *options], check=False)
        if done.returncode != 0:
            failed.append(f"{name} (exit {done.returncode})")
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
