"""Exactness and robustness of the API in real traced processes (each in a subprocess)."""

import json
from collections import Counter

import pytest
from api_support import PROGRAMS, clean_env, python, table

pytestmark = pytest.mark.timeout(180)


def _json(done):
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_stats_match_what_was_allocated_and_tracemallocs_peak(tmp_path):
    log = tmp_path / "events"
    ours = _json(
        python([PROGRAMS / "ground_truth.py", "memscope"], env=clean_env(MEMSCOPE_LOG_DIR=str(log)))
    )
    theirs = _json(python([PROGRAMS / "ground_truth.py", "tracemalloc"]))
    allocated = ours["allocated"]
    # Active memory grows by what the workload holds, and shrinks back when it is freed.
    assert ours["during"] - ours["before"] == pytest.approx(allocated, rel=0.01)
    assert abs(ours["after"] - ours["before"]) < 0.01 * allocated
    # The peak is what the workload held at most, and what tracemalloc measures for it.
    peak = ours["peak"] - ours["before"]
    assert peak == pytest.approx(allocated, rel=0.01)
    assert peak == pytest.approx(theirs["peak"] - theirs["before"], rel=0.01)
    assert ours["allocations"] >= 200


def test_memscopes_own_rows_are_not_the_programs_memory(tmp_path):
    result = _json(
        python([PROGRAMS / "own_cost.py"], env=clean_env(MEMSCOPE_LOG_DIR=str(tmp_path / "events")))
    )
    # 40,000 scope rows and 2,000 variables rows went through the process; what stays
    # allocated is a few bytes per row at most (they would be ~130 bytes each if kept).
    assert result["scopes"] < 20_000 * 50
    assert result["tracking"] < 2_000 * 250


def test_fork_storm_with_threads_and_churn_finishes_and_logs_every_child(tmp_path):
    log = tmp_path / "events"
    done = python(
        [PROGRAMS / "fork_storm.py", "16"], timeout=150, env=clean_env(MEMSCOPE_LOG_DIR=str(log))
    )
    result = _json(done)
    assert result["codes"] == [0] * 16
    rows = table(log, "processes")
    events = Counter((r["pid"], r["event"]) for r in rows)
    for pid in [result["pid"], *result["children"]]:
        assert events[(pid, "start")] == 1 and events[(pid, "exit")] == 1, pid
    parents = {r["pid"]: r["ppid"] for r in rows if r["event"] == "start"}
    assert all(parents[child] == result["pid"] for child in result["children"])
    # Threads started before init are named in the log.
    names = {r["name"] for r in table(log, "threads") if r["pid"] == result["pid"]}
    assert "MainThread" in names and len(names) >= 4


def test_disabled_init_and_track_var_do_nothing(tmp_path):
    code = (
        "import sys, threading, memscope\n"
        "memscope.init()\n"
        "data = [1]\n"
        "assert memscope.track_var(data) is data\n"
        "with memscope.scope('s'):\n"
        "    pass\n"
        "assert threading.active_count() == 1\n"
        "heavy = {'zmq', 'pyarrow', 'memscope.producer._tracer'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "try:\n"
        "    memscope.get_global_tracker().get_stats()\n"
        "except RuntimeError as exc:\n"
        "    assert 'disabled' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('stats without tracing')\n"
    )
    done = python(["-c", code], env=clean_env(MEMSCOPE_DISABLE="1"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "MemoryAnalysis").exists()


def test_track_var_before_init_says_what_to_do():
    done = python(["-c", "import memscope; memscope.track_var([1])"])
    assert done.returncode == 1
    assert "call memscope.init() first" in done.stderr


def test_init_with_an_unknown_setting_is_refused():
    done = python(["-c", "import memscope; memscope.init(colour='red')"])
    assert done.returncode == 1
    assert "unknown setting(s) colour" in done.stderr


def test_exports_write_every_report(tmp_path):
    code = (
        "import memscope\n"
        "memscope.init()\n"
        "users = {'ann': [1, 2], 'bob': [3]}\n"
        "memscope.track_var(users)\n"
        "tracker = memscope.get_global_tracker()\n"
        "usage = tracker.get_memory_by_type()\n"
        "assert [u.type_name for u in usage] == ['dict[str, list[int]]'], usage\n"
        "assert usage[0].allocation_count == 1 and usage[0].total_size > 0\n"
        "tracker.export_memory_analysis('out/memory_analysis.svg')\n"
        "tracker.export_lifecycle_timeline('out/lifecycle_timeline.svg')\n"
        "tracker.export_to_json('out/memory_snapshot.json')\n"
        "tracker.export_to_html('out/dashboard.html')\n"
        "tracker.export_analysis('out/analysis')\n"
        "memscope.shutdown()\n"
        "after = tracker.get_stats()  # from the log, once the broker is gone\n"
        "assert after.total_allocations > 0 and after.peak_memory >= after.active_memory\n"
    )
    (tmp_path / "program.py").write_text(code)
    done = python(
        ["program.py"],
        cwd=tmp_path,
        timeout=170,
        env=clean_env(MEMSCOPE_LOG_DIR=str(tmp_path / "events")),
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    for name in ("memory_analysis.svg", "lifecycle_timeline.svg"):
        assert (out / name).read_text().lstrip().startswith(("<svg", "<?xml"))
    snapshot = json.loads((out / "memory_snapshot.json").read_text())
    assert snapshot
    assert "<html" in (out / "dashboard.html").read_text().lower()
    kinds = sorted(p.name for p in (out / "analysis").glob("*.json"))
    assert kinds == sorted(
        f"snapshot_{k}.json"
        for k in (
            "memory_analysis",
            "lifetime",
            "security_violations",
            "complex_types",
            "performance",
            "unsafe_ffi",
        )
    )
    # The users variable of this process is in the lifetime report.
    lifetime = (out / "analysis" / "snapshot_lifetime.json").read_text()
    assert '"users"' in lifetime


@pytest.mark.parametrize("mode", ["aggregated", "sampled"])
def test_tracked_deaths_are_exact_in_every_mode(tmp_path, mode):
    from api_support import memscope_run

    done = memscope_run(
        ["--mode", mode, "--no-report", "--out", tmp_path / "run", PROGRAMS / "mode_death.py"]
    )
    t0, t1 = _json(done)
    log = tmp_path / "run" / "events"
    variables = {r["name"]: r for r in table(log, "variables")}
    assert set(variables) == {"big", "numbers"}
    memory = table(log, "memory", columns=["kind", "address", "ts_ns"])
    for name, row in variables.items():
        frees = [
            m["ts_ns"]
            for m in memory
            if m["kind"] == 3 and m["address"] == row["address"] and m["ts_ns"] > row["ts_ns"]
        ]
        assert frees and t0 <= min(frees) <= t1, (mode, name)
    assert {r["mode"] for r in table(log, "processes")} == {mode}


def test_memscopes_own_work_is_not_traced(tmp_path):
    log = tmp_path / "events"
    result = _json(python([PROGRAMS / "own_sites.py"], env=clean_env(MEMSCOPE_LOG_DIR=str(log))))
    from memscope.analyzers.views import connect

    con = connect(log)
    files = {
        row[0]
        for row in con.execute(
            "SELECT DISTINCT f.filename FROM allocations a JOIN frames f USING (pid, stack_id) "
            "WHERE a.pid = ? ORDER BY 1",
            [result["pid"]],
        ).fetchall()
    }
    own = sorted(f for f in files if "memscope" in f or f.endswith(("ast.py", "linecache.py")))
    assert own == [], own
    # What the program holds is what it allocated (4 x 50 kB, 60 kB, their containers).
    assert 260_000 <= result["active"] < 300_000


def test_threads_shorter_than_a_flush_interval_are_named(tmp_path):
    log = tmp_path / "events"
    result = _json(
        python([PROGRAMS / "short_threads.py"], env=clean_env(MEMSCOPE_LOG_DIR=str(log)))
    )
    named = {r["name"]: r["tid"] for r in table(log, "threads") if r["event"] == "start"}
    assert set(result) <= set(named)
    # run one after the other, they may share an ident; each is a thread of its own
    assert len({named[name] for name in result}) == len(result)
