"""pytest-memray's marker usage runs unchanged with memscope installed; ``--memscope`` reads it.

The subject suite uses every keyword pytest-memray documents for ``limit_memory`` and
``limit_leaks``. With both plugins installed, pytest (with and without ``--memray``) gives the
same outcomes as with memscope's plugin switched off; with ``--memscope`` memscope checks the
markers with pytest-memray's keywords and options.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_pytest_plugin import outcomes

from memscope.analyzers.log_builder import LogBuilder, write_log
from memscope.analyzers.views import connect_tables
from memscope.integrations.pytest_measure import measure
from memscope.integrations.pytest_window import WindowReader

MIB = 1024 * 1024

MEMRAY_SUITE = """
    import threading

    import pytest

    _cache = []


    def in_a_thread(n):
        box = []
        worker = threading.Thread(target=lambda: box.append(bytearray(n)))
        worker.start()
        worker.join()
        return box


    def remember(n):
        _cache.append(bytearray(n))


    @pytest.mark.limit_memory("2 MB", current_thread_only=True)
    def test_thread_memory_is_not_counted():
        assert len(in_a_thread(6 * 1024 * 1024)) == 1


    @pytest.mark.limit_memory("24 MB")
    def test_under_the_limit():
        assert len([bytes(1000) for _ in range(1000)]) == 1000


    def is_not_the_cache(stack):
        return not any(frame.function == "remember" for frame in stack.frames)


    @pytest.mark.limit_leaks("1 MB", filter_fn=is_not_the_cache)
    def test_cached_memory_is_filtered_out():
        remember(4 * 1024 * 1024)


    @pytest.mark.limit_leaks("1 MB", current_thread_only=True)
    def test_no_leak():
        scratch = bytearray(2 * 1024 * 1024)
        del scratch
"""

ALL_PASS = {
    name: "PASSED"
    for name in (
        "test_thread_memory_is_not_counted",
        "test_under_the_limit",
        "test_cached_memory_is_filtered_out",
        "test_no_leak",
    )
}


def pytest_run(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_subject.py").write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:randomly", *args, "test_subject.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=env,
    )


def test_a_pytest_memray_suite_runs_unchanged_with_both_plugins(tmp_path: Path) -> None:
    pytest.importorskip("pytest_memray")
    without = pytest_run(
        tmp_path, MEMRAY_SUITE, "--memray", "-p", "no:memscope.integrations.pytest_plugin"
    )
    assert outcomes(without.stdout) == ALL_PASS, without.stdout + without.stderr
    for args in (["--memray"], []):
        both = pytest_run(tmp_path, MEMRAY_SUITE, *args)
        assert outcomes(both.stdout) == ALL_PASS, both.stdout + both.stderr
        assert "memscope:" not in both.stdout
        assert not (tmp_path / "MemoryAnalysis").exists()
    # pytest-memray's options are its own (declared once: no conflict between the plugins).
    shown = pytest_run(tmp_path, MEMRAY_SUITE, "--help")
    assert shown.stdout.count("--most-allocations") == 1, shown.stdout + shown.stderr
    assert "--memscope" in shown.stdout


def test_memscope_honours_pytest_memrays_keywords(tmp_path: Path) -> None:
    done = pytest_run(
        tmp_path, MEMRAY_SUITE, "-p", "no:memray", "--memscope", "--memscope-dir", "run"
    )
    assert outcomes(done.stdout) == ALL_PASS, done.stdout + done.stderr
    # The same tests without the keywords fail: the keywords are what made them pass.
    bare = MEMRAY_SUITE.replace(", current_thread_only=True", "").replace(
        ", filter_fn=is_not_the_cache", ""
    )
    done = pytest_run(
        tmp_path, bare, "-p", "no:memray", "--memscope", "--memscope-dir", "run2", "--stacks", "3"
    )
    assert outcomes(done.stdout) == {
        **ALL_PASS,
        "test_thread_memory_is_not_counted": "FAILED",
        "test_cached_memory_is_filtered_out": "FAILED",
    }, done.stdout
    # --stacks 3: the leak's site and the callers above it (at least 5 for leaks, as memray).
    assert "test_subject.py:18 remember" in done.stdout
    assert "called from test_subject.py:37 test_cached_memory_is_filtered_out" in done.stdout


def test_fail_on_increase_compares_with_the_last_run(tmp_path: Path) -> None:
    source = """
        import os

        import pytest


        @pytest.mark.limit_memory("64 MB")
        def test_grows():
            data = bytearray(int(os.environ["SUBJECT_MB"]) * 1024 * 1024)
            assert data is not None
    """
    args = ["-p", "no:memray", "--memscope", "--fail-on-increase", "--memscope-dir"]
    os.environ["SUBJECT_MB"] = "2"
    try:
        first = pytest_run(tmp_path, source, *args, "run")
        assert outcomes(first.stdout) == {"test_grows": "PASSED"}, first.stdout
        os.environ["SUBJECT_MB"] = "6"
        second = pytest_run(tmp_path, source, *args, "run2")
    finally:
        del os.environ["SUBJECT_MB"]
    assert outcomes(second.stdout) == {"test_grows": "FAILED"}, second.stdout
    assert "more than the 2.0 MiB of its last run (--fail-on-increase)" in second.stdout


def _window_log(tmp_path: Path) -> tuple[LogBuilder, int]:
    b = LogBuilder()
    pid = 7
    b.process(pid, ts_ns=0)
    test = ("test_it", "/t/test_a.py", 5)
    in_test = b.stack(pid, [("main", "/t/run.py", 1), test])
    helper = b.stack(pid, [("main", "/t/run.py", 1), test, ("helper", "/t/test_a.py", 9)])
    fixture = b.stack(pid, [("main", "/t/run.py", 1), ("fixture", "/t/conftest.py", 3)])
    b.alloc(pid, ts_ns=10, address=0x100, size=1000, stack_id=fixture)  # before the test
    b.alloc(pid, ts_ns=100, address=0x200, size=300, stack_id=in_test)
    b.free(pid, ts_ns=105, address=0x100)  # a free of an older block: not counted
    b.alloc(pid, ts_ns=110, address=0x300, size=500, stack_id=helper, tid=2)  # peak 800
    b.free(pid, ts_ns=120, address=0x200)
    b.alloc(pid, ts_ns=130, address=0x400, size=200, stack_id=fixture)  # alive, not its own
    b.realloc(pid, ts_ns=140, address=0x500, old_address=0x400, size=250, stack_id=fixture)
    b.alloc(pid, ts_ns=145, address=0x600, size=50, stack_id=in_test)
    b.free(pid, ts_ns=150, address=0x600)
    b.alloc(pid, ts_ns=500, address=0x700, size=10_000, stack_id=in_test)  # after the test
    return b, pid


def test_the_window_reader_agrees_with_the_sql_measure(tmp_path: Path) -> None:
    b, pid = _window_log(tmp_path)
    log = write_log(b.tables(), tmp_path / "events")
    reader = WindowReader(log)
    got = reader.answer(
        {
            "pid": pid,
            "t0": 100,
            "t1": 200,
            "filename": "/t/test_a.py",
            "function": "test_it",
            "tid": None,
        }
    )
    sql = measure(connect_tables(b.tables()), pid, 100, 200, "/t/test_a.py", "test_it")
    assert got["peak_bytes"] == sql["peak_bytes"] == 800
    assert got["leaked_bytes"] == sql["leaked_bytes"] == 500
    assert got["leaked_blocks"] == sql["leaked_blocks"] == 1
    assert [(g["frames"][0][0], g["bytes"]) for g in got["peak_groups"]] == [
        ("helper", 500),
        ("test_it", 300),
    ]
    assert got["leak_groups"][0]["frames"][:2] == [
        ["helper", "/t/test_a.py", 9],
        ["test_it", "/t/test_a.py", 5],
    ]
    # A thread filter drops tid 2's block. Each request reads only what the log added
    # since the last one (requests come in time order, each after its window).
    later = WindowReader(log)
    only_main = later.answer(
        {
            "pid": pid,
            "t0": 100,
            "t1": 200,
            "filename": "/t/test_a.py",
            "function": "test_it",
            "tid": 1,
        }
    )
    assert only_main["peak_bytes"] == 300  # 300 at 100; later 250 + 50 at 145
    assert only_main["leaked_bytes"] == 0
    # A second question about the same window (another marker of the test) gets the same
    # events; a later window gets its own.
    again = later.answer(
        {
            "pid": pid,
            "t0": 100,
            "t1": 200,
            "filename": "/t/test_a.py",
            "function": "test_it",
            "tid": None,
        }
    )
    assert again == got
    after = later.answer(
        {
            "pid": pid,
            "t0": 400,
            "t1": 600,
            "filename": "/t/test_a.py",
            "function": "test_it",
            "tid": None,
        }
    )
    assert (after["events"], after["peak_bytes"], after["leaked_bytes"]) == (1, 10_000, 10_000)
