"""The cost of memscope's pytest markers, next to pytest-memray's, in the same run.

A suite of 4 marked tests (2 ``limit_memory``, 2 ``limit_leaks``; small allocations) and the
same suite without markers run in fresh ``pytest`` processes; each configuration's wall time
(the whole pytest process, as a user sees it) is the median (and the best) of ``--repeat``
runs, the configurations taking turns. Rows:

* ``plain``: plain pytest, no memory plugin active (``-p no:memray``, no ``--memscope``);
* ``--memscope, no markers``: the session traced, nothing measured;
* ``--memscope, 4 marked``: the session traced, 4 tests measured;
* ``--memray, 4 marked`` (when pytest-memray is installed).

The overhead of the 4 marked tests is printed over ``plain`` and over the unmarked traced
session (the markers' own cost), and as a ratio to pytest-memray's overhead: from the
medians (and, in brackets, from the best runs).

    python bench/bench_pytest.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SUITE = """
    import pytest

    {m1}
    def test_a():
        assert len([bytearray(1000) for _ in range(100)]) == 100

    {m2}
    def test_b():
        assert len({{i: str(i) for i in range(1000)}}) == 1000

    {m3}
    def test_c():
        assert len("a" * 10000) == 10000

    {m4}
    def test_d():
        assert len(list(range(1000))) == 1000
"""
MARKS = {
    "m1": '@pytest.mark.limit_memory("24 MB")',
    "m2": '@pytest.mark.limit_memory("24 MB")',
    "m3": '@pytest.mark.limit_leaks("1 MB")',
    "m4": '@pytest.mark.limit_leaks("1 MB")',
}


def configurations(memray: bool) -> dict[str, tuple[str, list[str]]]:
    """Label -> (suite file, pytest arguments)."""
    base = ["-q", "-p", "no:cacheprovider"]
    out = {
        "plain": (
            "marked.py",
            [*base, "-p", "no:memray", "-p", "no:memscope.integrations.pytest_plugin"],
        ),
        "--memscope, no markers": (
            "bare.py",
            [*base, "-p", "no:memray", "--memscope", "--memscope-dir", "{tmp}/bare"],
        ),
        "--memscope, 4 marked": (
            "marked.py",
            [*base, "-p", "no:memray", "--memscope", "--memscope-dir", "{tmp}/marked"],
        ),
    }
    if memray:
        out["--memray, 4 marked"] = (
            "marked.py",
            [*base, "-p", "no:memscope.integrations.pytest_plugin", "--memray"],
        )
    return out


def run_once(tmp: Path, suite: str, args: list[str]) -> float:
    """Seconds of one pytest process; raises if its tests did not pass."""
    for run_dir in ("bare", "marked"):
        subprocess.run(["rm", "-rf", str(tmp / run_dir)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    command = [sys.executable, "-m", "pytest", *[a.format(tmp=tmp) for a in args], suite]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, env=env, timeout=300)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    memray = importlib.util.find_spec("pytest_memray") is not None
    configs = configurations(memray)
    runs: dict[str, list[float]] = {label: [] for label in configs}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "marked.py").write_text(textwrap.dedent(SUITE.format(**MARKS)))
        (tmp / "bare.py").write_text(textwrap.dedent(SUITE.format(**{k: "" for k in MARKS})))
        for _ in range(args.repeat):
            for label, (suite, pytest_args) in configs.items():
                runs[label].append(run_once(tmp, suite, pytest_args))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    median = {label: statistics.median(times) for label, times in runs.items()}
    best = {label: min(times) for label, times in runs.items()}
    for label in configs:
        print(
            f"{label:<26} {median[label]:6.2f} s median, {best[label]:6.2f} s best "
            f"(of {args.repeat})"
        )
    marked = {
        k: v["--memscope, 4 marked"] - v["plain"] for k, v in (("median", median), ("best", best))
    }
    own = {
        k: v["--memscope, 4 marked"] - v["--memscope, no markers"]
        for k, v in (("median", median), ("best", best))
    }
    print(
        f"4 marked tests with --memscope: +{marked['median']:.2f} s over plain pytest "
        f"[best: +{marked['best']:.2f} s]; +{own['median']:.2f} s over the traced session "
        f"without markers [best: +{own['best']:.2f} s]"
    )
    if memray:
        memray_cost = median["--memray, 4 marked"] - median["plain"]
        print(
            f"pytest-memray: +{memray_cost:.2f} s over plain pytest (medians); memscope / "
            f"memray overhead ratio {marked['median'] / max(memray_cost, 1e-9):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
