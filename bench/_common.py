"""Pieces the overhead benchmarks share: their options and running one workload child."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path


def overhead_arguments(
    description: str, workloads: Mapping[str, object], setups: Mapping[str, object]
) -> argparse.ArgumentParser:
    """The options every overhead benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", default=",".join(workloads))
    parser.add_argument("--setups", default=",".join(setups))
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser


def run_script(
    code: str,
    command: Callable[[Path, Path], list[str]],
    env: Mapping[str, str],
    timeout: float,
    label: str,
) -> list[float]:
    """Write ``code`` to a temporary script, run ``command(script, tmpdir)``, return the
    numbers the child printed after ``ELAPSED``.

    Raises:
        RuntimeError: the child printed no ELAPSED line (its output is in the message).
    """
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "work.py"
        script.write_text(code)
        proc = subprocess.run(
            command(script, Path(tmp)),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env),
        )
    for line in proc.stdout.splitlines():
        if line.startswith("ELAPSED "):
            return [float(x) for x in line.split()[1:]]
    raise RuntimeError(f"{label} failed:\n{proc.stdout}\n{proc.stderr}")


def memray_reports(capture: Path) -> None:
    """``memray stats --json`` and ``memray flamegraph`` of one capture file, beside it."""
    for verb, options, suffix in (("stats", ["--json"], ".json"), ("flamegraph", [], ".html")):
        subprocess.run(
            [sys.executable, "-m", "memray", verb, *options, "-f", "-o", f"{capture}{suffix}"]
            + [str(capture)],
            check=True,
            capture_output=True,
        )
