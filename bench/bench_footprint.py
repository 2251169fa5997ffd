"""Memory footprint: peak RSS of an allocation-heavy loop, plain and under each tracer.

::

    python bench/bench_footprint.py [--iterations 1000000] [--json FILE]

The loop (``LOOP``) makes short-lived dicts, lists, tuples and strings: about 17 million
allocator events for 1 M iterations. Every configuration runs it as a child of this script,
and the child's own peak RSS is ``ru_maxrss`` from ``os.wait4`` (exact: the kernel's high-water
mark of that one process, which has no children):

* ``plain``, ``tracemalloc(1)``, ``memray`` (``python -m memray run
  --trace-python-allocators``: its capture file is written by the traced process itself);
* ``memscope``: the traced process (``memscope.init()`` against a broker this script runs as a
  separate ``memscope broker`` process, whose peak is measured the same way when it stops);
* ``memscope run``: the whole verb with ``--no-report``; its supervisor lives from before the
  program starts until after the broker stopped, and its peak is its ``VmHWM`` polled every
  20 ms (``wait4`` would fold in its children's peaks).

Prints the peaks, the traced process's growth over plain, and the ratios against memray and
tracemalloc measured in the same run; the figures are checked against the limits of issue 13
(traced <= plain + 64 MiB, every other memscope process <= 128 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOP = """
import sys
keep = []
for i in range(int(sys.argv[1])):
    item = {"id": i, "tags": [i, i + 1], "pair": (i, str(i))}
    keep.append(item)
    if len(keep) > 2_000:
        keep = []
"""
TRACED_LIMIT_MIB = 64
OTHER_LIMIT_MIB = 128
MIB = 1 << 20


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    env.update(extra)
    return env


def _peak_of(argv: list[str], env: dict[str, str]) -> int:
    """Run ``argv``; its own peak RSS in bytes (``ru_maxrss`` is in KiB on Linux)."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv}: exit status {process.returncode}")
    return int(usage.ru_maxrss) * 1024


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(iterations: int, tmp: Path) -> dict[str, int]:
    """Peak RSS in bytes of every configuration."""
    script = tmp / "loop.py"
    script.write_text(LOOP)
    py = sys.executable
    args = [str(script), str(iterations)]
    peaks = {
        "plain": _peak_of([py, *args], _clean_env()),
        "tracemalloc(1)": _peak_of([py, "-X", "tracemalloc=1", *args], _clean_env()),
        "memray": _peak_of(
            [
                py,
                "-m",
                "memray",
                "run",
                "--quiet",
                "--trace-python-allocators",
                "-o",
                str(tmp / "memray.bin"),
                *args,
            ],
            _clean_env(),
        ),
    }
    # the traced process and a broker of its own
    address = f"ipc://{tmp}/broker"
    broker = subprocess.Popen(
        [
            py,
            "-m",
            "memscope",
            "broker",
            "--bind",
            address,
            "--log",
            str(tmp / "events"),
            "--quiet",
        ],
        env=_clean_env(),
    )
    try:
        time.sleep(1.0)  # bound and listening (the producer would wait for it anyway)
        traced = tmp / "traced.py"
        traced.write_text("import memscope\nmemscope.init()\n" + LOOP)
        peaks["memscope: traced process"] = _peak_of(
            [py, str(traced), str(iterations)], _clean_env(MEMSCOPE_BROKER_ADDRESS=address)
        )
    finally:
        broker.terminate()
        _, _, usage = os.wait4(broker.pid, 0)
        broker.returncode = 0
    peaks["memscope: broker"] = int(usage.ru_maxrss) * 1024
    # memscope run: its supervisor, polled
    run = subprocess.Popen(
        [py, "-m", "memscope", "run", "--no-report", "--out", str(tmp / "run"), *args],
        env=_clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    supervisor = 0
    while run.poll() is None:
        supervisor = max(supervisor, _hwm(run.pid))
        time.sleep(0.02)
    if run.returncode != 0:
        raise RuntimeError(f"memscope run: exit status {run.returncode}")
    peaks["memscope run: supervisor"] = supervisor
    return peaks


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and the verdict; 1 if a limit is exceeded."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="memscope-footprint-") as tmp:
        peaks = measure(options.iterations, Path(tmp))
    plain = peaks["plain"]
    traced = peaks["memscope: traced process"]
    print(
        f"peak RSS, allocation-heavy loop of {options.iterations:,} iterations "
        "(ru_maxrss of each process; the supervisor's VmHWM polled)"
    )
    print(f"{'configuration':<28}{'peak':>10}{'over plain':>13}")
    others = {
        k: v for k, v in peaks.items() if k in ("memscope: broker", "memscope run: supervisor")
    }
    for name, peak in peaks.items():
        over = "" if name in others else f"{(peak - plain) / MIB:+10.1f} MiB"
        print(f"{name:<28}{peak / MIB:7.1f} MiB{over:>16}")
    ours = traced - plain
    for other in ("memray", "tracemalloc(1)"):
        theirs = peaks[other] - plain
        growth = f"{ours / theirs:.2f}x" if theirs >= MIB else "n/a (theirs is under 1 MiB)"
        print(
            f"peak / {other}'s peak: {traced / peaks[other]:.2f}x; growth over plain / "
            f"{other}'s: {growth}"
        )
    ok = traced <= plain + TRACED_LIMIT_MIB * MIB and all(
        v <= OTHER_LIMIT_MIB * MIB for v in others.values()
    )
    print(
        f"limits (traced <= plain + {TRACED_LIMIT_MIB} MiB, other memscope processes <= "
        f"{OTHER_LIMIT_MIB} MiB): {'met' if ok else 'EXCEEDED'}"
    )
    if options.json:
        options.json.write_text(
            json.dumps(
                {"iterations": options.iterations, "peaks": peaks, "limits_met": ok}, indent=2
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
