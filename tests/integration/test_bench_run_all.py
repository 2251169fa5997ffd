"""bench/run_all.py: runs every bench_*.py with a timeout, summarizes, fails if one failed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUN_ALL = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"


@pytest.fixture
def run_all(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_run_all", RUN_ALL)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_run_all", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    return module


def _bench(directory: Path, name: str, body: str) -> None:
    (directory / f"bench_{name}.py").write_text("import sys, time\n" + body + "\n")


def test_every_bench_runs_quick_and_a_failure_or_timeout_makes_it_exit_1(run_all, tmp_path, capfd):
    _bench(tmp_path, "broker", "print('broker table', sys.argv[1:])")
    _bench(tmp_path, "extra", "print('extra table', sys.argv[1:])")
    _bench(tmp_path, "tracer", "sys.exit(3)")
    _bench(tmp_path, "api", "time.sleep(30)")
    assert run_all.main(["--timeout", "3"]) == 1
    out = capfd.readouterr()
    assert "broker table ['--quick']" in out.out and "extra table []" in out.out
    summary = out.out.split("=== summary (quick sizes)")[1]
    assert "tracer" in summary and "failed (exit 3)" in summary
    assert "timed out after 3 s" in summary and "2 of 4 benchmarks succeeded" in summary
    assert "api (timed out after 3 s)" in out.err


def test_all_succeeding_exits_0_and_only_selects(run_all, tmp_path, capfd):
    _bench(tmp_path, "broker", "print('broker', sys.argv[1:])")
    _bench(tmp_path, "tracer", "sys.exit(1)")
    assert run_all.main(["--only", "broker", "--moderate"]) == 0
    out = capfd.readouterr().out
    assert "broker ['--events', '8388608', '--repeat', '2']" in out and "1 of 1" in out
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nosuch"])
