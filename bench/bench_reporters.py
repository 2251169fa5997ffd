"""Time of the terminal reporters (``memscope table/tree/summary``) next to memray's.

One workload (a call tree of functions keeping and dropping strings, lists and dicts; about
``--scale`` x 1.2 M allocation events) is traced once by ``memscope run --no-report`` and once
by ``memray run``; then each reporter runs in a fresh process with its output piped, best of
``--repeat``:

* ``memscope summary`` cold: the first command on the log folds it and writes the analysis
  checkpoint; warm: later commands read the checkpoint;
* ``memscope table`` and ``memscope tree`` (warm);
* ``memray summary`` (memray's ``tree`` is an interactive terminal application and its
  ``table`` writes HTML: neither has a piped text form to time). tracemalloc has no reporter.

    python bench/bench_reporters.py [--repeat 3] [--scale 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORKLOAD = """
    import sys

    SCALE = float(sys.argv[1])
    kept = []


    def leaf(n, tag):
        return [f"{tag}-{i}" for i in range(n)]


    def branch(depth, n):
        if depth == 0:
            return leaf(n, depth)
        made = [branch(depth - 1, n // 2) for _ in range(2)]
        kept.append({i: s for i, s in enumerate(made[0][: n // 8])})
        return made[1]


    for r in range(int(60 * SCALE)):
        branch(6, 2000)
        if len(kept) > 2000:
            del kept[:1000]
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds of one command with its output piped away; raises if it failed."""
    start = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=1800,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    py = sys.executable
    memray = importlib.util.find_spec("memray") is not None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "work.py").write_text(textwrap.dedent(WORKLOAD))
        timed(
            [
                py,
                "-m",
                "memscope",
                "run",
                "--no-report",
                "--out",
                "run",
                "work.py",
                str(args.scale),
            ],
            tmp,
            env,
        )
        if memray:
            timed(
                [py, "-m", "memray", "run", "-q", "-o", "work.bin", "work.py", str(args.scale)],
                tmp,
                env,
            )
        events = subprocess.run(
            [
                py,
                "-m",
                "memscope",
                "query",
                "run",
                "select count(*) from events",
                "--format",
                "csv",
            ],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        count = int(events.stdout.split()[-1])
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            shutil.rmtree(tmp / "run" / "events" / "_state", ignore_errors=True)
            rows = {
                "memscope summary (cold)": [py, "-m", "memscope", "summary", "run"],
                "memscope summary (warm)": [py, "-m", "memscope", "summary", "run"],
                "memscope table (warm)": [py, "-m", "memscope", "table", "run"],
                "memscope tree (warm)": [py, "-m", "memscope", "tree", "run"],
            }
            if memray:
                rows["memray summary"] = [py, "-m", "memray", "summary", "work.bin"]
            for label, command in rows.items():
                best[label] = min(best.get(label, float("inf")), timed(command, tmp, env))
    print(
        f"workload: {count:,} memory events in memscope's log; load average at the end "
        f"{os.getloadavg()[0]:.2f}"
    )
    for label, seconds in best.items():
        print(f"{label:<26} {seconds:7.2f} s   (best of {args.repeat})")
    if memray:
        ref = best["memray summary"]
        for label in ("memscope summary (cold)", "memscope summary (warm)"):
            print(f"{label} / memray summary: {best[label] / ref:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
