"""The pytest plugin: markers fail and pass where they should; --memscope writes a log; inert.

The plugin runs in a pytest started in a subprocess (the installed ``pytest11`` entry point
loads it, as it would for a user); the per-test figures are unit-tested on hand-built logs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.views import connect, connect_tables
from memscope.broker import start_embedded
from memscope.integrations.pytest_measure import measure
from memscope.units import human_bytes as format_size
from memscope.units import parse_size

MIB = 1024 * 1024

MARKED_TESTS = """
    import pytest

    _keep = []


    @pytest.mark.limit_memory("1 MB")
    def test_small_stays_under():
        data = [bytes(1000) for _ in range(100)]
        assert len(data) == 100


    @pytest.mark.limit_memory("1 MB")
    def test_big_goes_over():
        data = bytearray(8 * 1024 * 1024)
        assert len(data)


    def keep_forever():
        _keep.append(bytearray(3 * 1024 * 1024))


    @pytest.mark.limit_leaks("1 MB")
    def test_leaks_through_helper():
        keep_forever()


    @pytest.mark.limit_leaks("1 MB")
    def test_frees_what_it_takes():
        scratch = bytearray(3 * 1024 * 1024)
        del scratch


    @pytest.mark.limit_memory("64 MB")
    @pytest.mark.limit_leaks("1 MB")
    def test_both_limits_met():
        scratch = [bytearray(1024 * 1024) for _ in range(4)]
        assert len(scratch) == 4


    @pytest.mark.limit_memory("64 MB")
    @pytest.mark.limit_leaks("1 MB")
    def test_both_limits_leak_over():
        keep_forever()
"""


def run_pytest(
    tmp_path: Path,
    source: str,
    *args: str,
    name: str = "test_subject.py",
    timeout: float = 240,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    (tmp_path / name).write_text(textwrap.dedent(source))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-rA",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-p",
            "no:memray",
            *args,
            name,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**environ, **(env or {})},
    )


def outcomes(stdout: str) -> dict[str, str]:
    return {
        m.group(2): m.group(1)
        for m in re.finditer(r"^(PASSED|FAILED|ERROR) \S+::(\w+)", stdout, re.M)
    }


def test_markers_fail_and_pass_where_they_should(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, MARKED_TESTS, "--memscope", "--memscope-dir", "run")
    assert outcomes(done.stdout) == {
        "test_small_stays_under": "PASSED",
        "test_big_goes_over": "FAILED",
        "test_leaks_through_helper": "FAILED",
        "test_frees_what_it_takes": "PASSED",
        "test_both_limits_met": "PASSED",
        "test_both_limits_leak_over": "FAILED",  # each marker sees the test's events
    }, done.stdout + done.stderr
    assert done.returncode == 1
    out = done.stdout
    # The failure messages name the limit, the measured figure and the top sites.
    big = re.search(
        r"test_big_goes_over allocated up to ([\d.]+) MiB at once, over its "
        r"limit_memory of 1\.0 MiB",
        out,
    )
    assert big and 8.0 <= float(big.group(1)) < 8.2, out
    assert re.search(r"8\.0 MiB in +\d+ blocks? +test_subject\.py:\d+ test_big_goes_over", out)
    leak = re.search(
        r"test_leaks_through_helper left ([\d.]+) MiB in \d+ blocks allocated by "
        r"its own code, over its limit_leaks of 1\.0 MiB",
        out,
    )
    assert leak and 3.0 <= float(leak.group(1)) < 3.1, out
    assert re.search(r"3\.0 MiB in +\d+ blocks? +test_subject\.py:\d+ keep_forever", out)
    # Passing tests show their figures in the report section.
    assert re.search(r"Captured memscope call.*\npeak of memory allocated during the test: ", out)
    # The measured tests, largest first (--most-allocations, 5 by default).
    ranked = re.findall(r"^ *[\d.]+ \w+  test_subject\.py::(\w+)$", out, re.M)
    assert ranked[0] == "test_big_goes_over" and len(ranked) == 4, out


def test_markers_are_inert_without_the_option(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, MARKED_TESTS)
    assert set(outcomes(done.stdout).values()) == {"PASSED"}, done.stdout + done.stderr
    assert "memscope:" not in done.stdout


def test_plugin_is_inert_without_option_or_marker(tmp_path: Path) -> None:
    source = """
        import sys
        import threading


        def test_nothing_started():
            # The plugin module is loaded (by its entry point), but tracing is not started:
            # no API, capture, publisher, ZeroMQ or Arrow module, and no extra thread.
            assert "memscope.integrations.pytest_plugin" in sys.modules
            heavy = {"memscope.api.tracker", "memscope.producer.session",
                     "memscope.producer._tracer", "zmq", "pyarrow", "duckdb"}
            assert heavy.isdisjoint(sys.modules)
            assert threading.active_count() == 1
    """
    # Named explicitly as well as loaded by its entry point: registered once, no error.
    done = run_pytest(tmp_path, source, "-p", "memscope.integrations.pytest_plugin")
    assert outcomes(done.stdout) == {"test_nothing_started": "PASSED"}, done.stdout + done.stderr
    assert not list(tmp_path.glob("MemoryAnalysis")), "no log without --memscope"
    assert "memscope: the session's log" not in done.stdout


def test_memscope_option_traces_the_session_into_a_log(tmp_path: Path) -> None:
    source = """
        def build(n):
            return [str(i) * 10 for i in range(n)]


        def test_builds_strings():
            assert len(build(20_000)) == 20_000
    """
    run_dir = tmp_path / "session"
    done = run_pytest(
        tmp_path, source, "--memscope", "--memscope-dir", str(run_dir), "--memscope-report"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"memscope: the session's log is {run_dir / 'events'}" in done.stdout
    assert f"dashboard: {run_dir / 'dashboard.html'}" in done.stdout
    assert len(list(run_dir.glob("snapshot_*.json"))) == 6
    assert (run_dir / "dashboard.html").stat().st_size > 0
    con = connect(run_dir)
    processes = con.execute("SELECT argv, end_ts_ns IS NOT NULL FROM processes").fetchall()
    assert len(processes) == 1 and processes[0][1], processes
    assert any("pytest" in arg for arg in processes[0][0])
    # The test's own allocations are in the log with their stacks.
    (built,) = con.execute(
        """SELECT count(*) FROM allocations a JOIN stacks s USING (pid, stack_id)
        WHERE s.function LIKE 'build%' AND s.filename LIKE '%test_subject.py'"""
    ).fetchone()
    assert built >= 20_000


def test_markers_with_a_standalone_broker_measure_from_its_log(tmp_path: Path) -> None:
    source = """
        import pytest

        _keep = []


        @pytest.mark.limit_leaks("1 MB")
        def test_leaks():
            _keep.append(bytearray(2 * 1024 * 1024))
    """
    broker = start_embedded(tmp_path / "broker-log")
    try:
        done = run_pytest(
            tmp_path, source, "--memscope", env={"MEMSCOPE_BROKER_ADDRESS": broker.address}
        )
    finally:
        broker.stop()
    assert outcomes(done.stdout) == {"test_leaks": "FAILED"}, done.stdout + done.stderr
    assert "test_leaks left 2.0 MiB" in done.stdout
    assert f"the session's events went to the broker at {broker.address}" in done.stdout
    (pids,) = connect(tmp_path / "broker-log").execute("SELECT count(*) FROM processes").fetchone()
    assert pids == 1


def test_pytest_under_memscope_run_measures_from_the_runs_log(tmp_path: Path) -> None:
    source = """
        import pytest


        @pytest.mark.limit_memory("1 MB")
        def test_big():
            assert len(bytearray(4 * 1024 * 1024))
    """
    (tmp_path / "test_subject.py").write_text(textwrap.dedent(source))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "run",
            "--no-report",
            "--out",
            str(tmp_path / "run"),
            "-m",
            "pytest",
            "--",
            "-rA",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:memray",
            "--memscope",
            "test_subject.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=environ,
    )
    assert outcomes(done.stdout) == {"test_big": "FAILED"}, done.stdout + done.stderr
    assert "test_big allocated up to 4.0 MiB" in done.stdout
    assert "PytestAssertRewriteWarning" not in done.stdout
    assert not list(tmp_path.glob("MemoryAnalysis")), "the run's log is used, no other"


def test_bad_marker_size_is_a_clear_error(tmp_path: Path) -> None:
    source = """
        import pytest


        @pytest.mark.limit_memory("lots")
        def test_x():
            pass
    """
    done = run_pytest(tmp_path, source, "--memscope", "--memscope-dir", "run")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    err = done.stdout + done.stderr
    assert "'lots' is not a memory size" in err
    assert "Traceback" not in err and "ValueError" not in err
    source = source.replace('"lots"', '"24 MBB"')
    done = run_pytest(tmp_path, source, "--memscope", "--memscope-dir", "run")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "'24 MBB' is not a memory size" in done.stdout + done.stderr
    done = run_pytest(
        tmp_path,
        source.replace('"24 MBB"', '"1 MB", bogus=1'),
        "--memscope",
        "--memscope-dir",
        "run",
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "does not take bogus" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24 MB", 24 * MIB),
        ("24MB", 24 * MIB),
        ("1.5 GiB", 3 * 512 * MIB),
        ("512 kb", 512 * 1024),
        ("100", 100),
        ("100 B", 100),
        (4096, 4096),
    ],
)
def test_parse_size(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "-1 MB", "2 XB", "1e6", None, True])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="not a memory size"):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(3 * MIB) == "3.0 MiB"
    assert format_size(150 * MIB) == "150 MiB"


def test_measure_on_a_hand_built_log() -> None:
    """Peak counts only blocks allocated in the window; leaks only those from the test."""
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
    b.alloc(pid, ts_ns=110, address=0x300, size=500, stack_id=helper)  # peak 800 here
    b.free(pid, ts_ns=120, address=0x200)
    b.alloc(pid, ts_ns=130, address=0x400, size=200, stack_id=fixture)  # alive, not its own
    b.alloc(pid, ts_ns=140, address=0x500, size=50, stack_id=in_test)
    b.free(pid, ts_ns=150, address=0x500)
    b.alloc(pid, ts_ns=500, address=0x600, size=10_000, stack_id=in_test)  # after the test
    con = connect_tables(b.tables())
    got = measure(con, pid, 100, 200, "/t/test_a.py", "test_it")
    assert got["peak_bytes"] == 800
    assert got["peak_ts_ns"] == 110
    assert [(s["site"], s["bytes"]) for s in got["peak_sites"]] == [
        ("/t/test_a.py:9 helper", 500),
        ("/t/test_a.py:5 test_it", 300),
    ]
    assert got["leaked_bytes"] == 500
    assert got["leaked_blocks"] == 1
    assert got["leak_sites"] == [{"site": "/t/test_a.py:9 helper", "bytes": 500, "blocks": 1}]
    assert measure(con, pid, 300, 400, "/t/test_a.py", "test_it")["peak_bytes"] == 0


def test_disabled_tracing_checks_nothing_and_says_so(tmp_path: Path) -> None:
    done = run_pytest(
        tmp_path, MARKED_TESTS, "--memscope", "--memscope-dir", "run", env={"MEMSCOPE_DISABLE": "1"}
    )
    assert set(outcomes(done.stdout).values()) == {"PASSED"}, done.stdout + done.stderr
    assert "memory limits were not checked" in done.stdout or "not checked" in done.stdout
    assert "memscope: tracing is disabled (MEMSCOPE_DISABLE): no log" in done.stdout
    assert not (tmp_path / "run").exists()
