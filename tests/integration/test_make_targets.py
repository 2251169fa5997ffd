"""memscope-rs's make targets: each runs something real; ``make html`` finds the newest run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dry_run(target: str) -> str:
    done = make("-n", target)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "target", ["test-stress", "test-safety", "test-performance", "test-edge", "test-integration"]
)
def test_each_test_target_runs_existing_test_files(target: str) -> None:
    commands = [line for line in dry_run(target).splitlines() if "-m pytest" in line]
    assert len(commands) == 1
    files = re.findall(r"tests/\S+\.py", commands[0])
    assert files and all((ROOT / f).is_file() for f in files), files


def test_check_lints_and_types_and_the_run_targets_run_programs() -> None:
    check = dry_run("check")
    assert "ruff check" in check and "mypy -p memscope" in check
    main = dry_run("run-main")
    assert "memscope run --out MemoryAnalysis/main examples/basic_usage.py" in main
    assert "memscope tree MemoryAnalysis/main" in main
    stress = dry_run("run-memory-stress")
    assert "examples/memory_stress.py" in stress


def test_the_memory_stress_example_runs_traced(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "memory_stress.py"), "--no-export"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    made = re.search(r"4 threads made ([\d,]+) objects", done.stdout)
    allocations = re.search(r"total allocations: +([\d,]+)", done.stdout)
    assert made and allocations, done.stdout
    # Every object made is at least one allocation the tracer saw.
    assert int(allocations.group(1).replace(",", "")) > int(made.group(1).replace(",", ""))


def test_make_html_uses_the_newest_run_in_subfolders(tmp_path: Path) -> None:
    runs = tmp_path / "MemoryAnalysis"
    for name in ("b-older", "a-newer"):  # names sort the other way than times
        (runs / name).mkdir(parents=True)
        (runs / name / "snapshot_memory_analysis.json").write_text("{}")
        time.sleep(1.1)
    (runs / "no-analysis").mkdir()
    done = make("html-dir", f"DIR={runs}")
    assert done.stdout.strip() == str(runs / "a-newer"), done.stderr
    # A DIR holding the files itself is used as it is.
    done = make("html-dir", f"DIR={runs / 'b-older'}")
    assert done.stdout.strip() == str(runs / "b-older")
    done = make("html-dir", f"DIR={tmp_path / 'empty'}")
    assert done.returncode != 0
    assert "no *_memory_analysis.json in" in done.stderr + done.stdout
    out = dry_run_html(runs)
    assert (
        f'memscope dashboard "{runs / "a-newer"}" --output '
        f'"{runs / "a-newer" / "dashboard.html"}"' in out
    )


def dry_run_html(runs: Path) -> str:
    done = make("-n", "html-only", f"DIR={runs}")
    assert done.returncode == 0, done.stderr
    return done.stdout
