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
  program starts until after the broker stopped. The peaks of it and of every process below
  it (the traced program, with its crash-capture arena and durable spool, and the embedded
  broker) are their ``VmHWM``, polled every 20 ms (``wait4`` would fold in the children's
  peaks).

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
    run_peaks: dict[str, int] = {}
    while run.poll() is None:
        for pid, role in _tree(run.pid, str(script)).items():
            peak = _hwm(pid)  # (0: gone already)
            if peak:
                name = f"memscope run: {role}"
                run_peaks[name] = max(run_peaks.get(name, 0), peak)
        time.sleep(0.02)
    if run.returncode != 0:
        raise RuntimeError(f"memscope run: exit status {run.returncode}")
    peaks.update(sorted(run_peaks.items()))
    return peaks


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def _tree(root: int, script: str) -> dict[int, str]:
    """``root`` and its descendants, each named by its role (the program, the broker, ...)."""
    roles = {root: "supervisor"}
    todo = _children(root)
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                argv = cmdline.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if script in argv:
            roles[pid] = "traced program"
        elif "broker" in argv:
            roles[pid] = "broker"
        else:
            roles[pid] = "other: " + " ".join(argv[1:4])
        todo.extend(_children(pid))
    return roles


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
    traced_names = ("memscope: traced process", "memscope run: traced program")
    others = {k: v for k, v in peaks.items() if k.startswith("memscope") and k not in traced_names}
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
    ok = all(peaks.get(name, 0) <= plain + TRACED_LIMIT_MIB * MIB for name in traced_names) and all(
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
