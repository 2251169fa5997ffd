"""``memscope run`` at the edges of a process's life: forks from threads, memscope's own threads."""

import json
import time

import pytest
from api_support import PROGRAMS, memscope_run, python, table

pytestmark = pytest.mark.timeout(120)


def test_a_fork_from_a_thread_whose_child_returns_ends_promptly(tmp_path):
    args = [PROGRAMS / "fork_from_threads.py", "1"]
    plain = python(args)
    started = time.monotonic()
    traced = memscope_run(["--out", tmp_path / "run", "--no-report", *args], timeout=60)
    elapsed = time.monotonic() - started
    assert traced.returncode == 0, traced.stderr
    assert elapsed < 5.0
    assert traced.stdout == plain.stdout
    assert json.loads(traced.stdout) == {"threads": 1, "names": ["MainThread"], "codes": [0]}
    processes = table(tmp_path / "run" / "events", "processes")
    assert len({r["pid"] for r in processes}) == 2
    exits = {r["pid"] for r in processes if r["event"] == "exit"}
    assert exits == {r["pid"] for r in processes}  # the child sent its final batch
    assert "no final batch" not in traced.stderr


def test_fork_storm_from_threads_with_grandchildren_leaves_no_orphan(tmp_path):
    args = [PROGRAMS / "fork_from_threads.py", "16"]
    traced = memscope_run(["--out", tmp_path / "run", "--no-report", *args], timeout=90)
    assert traced.returncode == 0, traced.stderr
    out = json.loads(traced.stdout)
    assert out == {"threads": 1, "names": ["MainThread"], "codes": [0] * 16}
    processes = table(tmp_path / "run" / "events", "processes")
    pids = {r["pid"] for r in processes}
    assert len(pids) == 1 + 16 + 8  # the program, its children, the odd children's children
    assert {r["pid"] for r in processes if r["event"] == "exit"} == pids
    threads = table(tmp_path / "run" / "events", "threads")
    # every child's one thread (the one that forked) is named in the child
    assert {r["pid"] for r in threads} == pids
