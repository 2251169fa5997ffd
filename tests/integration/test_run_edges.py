"""``memscope run`` at the edges of a process's life: forks from threads, memscope's own threads."""

import json
import sys
import time
from pathlib import Path

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


def _stats(run):
    done = python(["-m", "memscope", "stats", "--json", run])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["total"]


def _in_memscope(finding: dict) -> bool:
    """Whether a frame of the finding's stack is in memscope's own packages."""
    import memscope

    root = Path(memscope.__file__).resolve().parent
    ours = [str(root / name) + "/" for name in LAYER_PACKAGES]
    return any(
        frame.rsplit("(", 1)[-1].startswith(tuple(ours)) for frame in finding["stack"]["trace"]
    )


#: memscope's subpackages (its code, as opposed to the checkout's tests and examples).
LAYER_PACKAGES = (
    "producer",
    "protocol",
    "eventlog",
    "broker",
    "analyzers",
    "exporters",
    "api",
    "commands",
    "integrations",
    "config",
)


@pytest.mark.parametrize("attempt", range(3))
def test_memscopes_own_threads_make_no_findings_and_stay_invisible(tmp_path, attempt):
    args = [PROGRAMS / "http_pool.py", "2000"]
    plain = python(args)
    run = tmp_path / "run"
    traced = memscope_run(["--out", run, "--no-report", *args], timeout=110)
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout  # "threads now 1 ['MainThread']": no memscope thread
    assert "threads now 1 ['MainThread']" in traced.stdout
    done = python(["-m", "memscope", "analyze", run, "--only", "security", "--out", run])
    assert done.returncode == 0, done.stderr
    report = json.loads((run / "snapshot_security_violations.json").read_text())
    kinds = {f["kind"] for f in report["violation_reports"]}
    phantom = {"domain_mismatch", "invalid_free", "double_free"}
    if sys.version_info >= (3, 13):
        # known: on 3.13 a thread's clock mapping can disagree with another's by tens of ms,
        # which orders a cross-thread reuse of an address wrongly; a run now and then then
        # shows one same-thread "double free" no allocation explains (not memscope's threads)
        phantom.discard("double_free")
    assert not kinds & phantom
    high = [
        f
        for f in report["violation_reports"]
        if f["severity"] == "high" or (f["severity"] == "critical" and f["kind"] in phantom)
    ]
    # What memscope's own threads would cause has no stack, or one in memscope's code: none.
    assert not [f for f in high if not f["stack"].get("trace") or _in_memscope(f)]
    # A high finding left is a leak of the program's own (stdlib) code, and a real retention
    # that a run flags now and then (seen on 3.11 and 3.12): CPython's type attribute cache
    # keeps strings built per request ('do_' + command in BaseHTTPRequestHandler, the
    # '_request' method names of OpenerDirector.open), and sockets in reference cycles are
    # alive until a collection that may come after tracing ended. Small, and never a phantom.
    assert all(f["kind"] == "leak" and f["alive_bytes"] < 1 << 20 for f in high), high
    # one row per thread: the main thread, the server's, the pool's 32, one per request
    starts = [r for r in table(run / "events", "threads") if r["event"] == "start"]
    assert len(starts) == len({r["tid"] for r in starts}) == 1 + 1 + 32 + 2000
    total = _stats(run)
    assert total["total_deallocations"] > 100_000
    assert total["unmatched_frees"] <= 0.001 * total["total_deallocations"]


def test_thread_identity_survives_ident_reuse(tmp_path):
    run = tmp_path / "run"
    traced = memscope_run(["--out", run, "--no-report", PROGRAMS / "thread_reuse.py", "2000"])
    assert traced.returncode == 0, traced.stderr
    out = json.loads(traced.stdout)
    assert out["idents"] < 2000  # CPython did reuse idents: the case this test is about
    events = run / "events"
    starts = [
        r
        for r in table(events, "threads")
        if r["event"] == "start" and r["name"].startswith("short-")
    ]
    assert len(starts) == 2000
    tid_of = {r["name"]: r["tid"] for r in starts}
    assert len(set(tid_of.values())) == 2000
    variables = [r for r in table(events, "variables") if r["name"].startswith("v")]
    assert len(variables) == 2000
    # every variable carries the tid of the thread that tracked it, never a reused one
    assert all(v["tid"] == tid_of[f"short-{v['name'][1:]}"] for v in variables)


def test_a_double_free_is_reported_once_with_every_stack(tmp_path):
    run = tmp_path / "run"
    traced = memscope_run(["--out", run, "--no-report", PROGRAMS / "double_free.py"])
    assert traced.returncode == 0, traced.stderr
    done = python(["-m", "memscope", "analyze", run, "--only", "security", "--out", run])
    assert done.returncode == 0, done.stderr
    report = json.loads((run / "snapshot_security_violations.json").read_text())
    doubles = [f for f in report["violation_reports"] if f["kind"] == "double_free"]
    assert len(doubles) == 1
    found = doubles[0]
    assert found["address"] == json.loads(traced.stdout)["address"]
    assert found["stack"]["trace"][0].startswith("free_again ")
    roles = {r["role"]: r for r in found["related_allocations"]}
    assert roles["allocation"]["stack"]["trace"][0].startswith("allocate ")
    assert roles["allocation"]["size"] == 440
    assert roles["first_free"]["stack"]["trace"][0].startswith("free_once ")
    assert roles["first_free"]["ts_ns"] < found["ts_ns"]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_terminated_by_the_pool_are_all_in_the_log(tmp_path, method):
    for attempt in range(10):
        run = tmp_path / f"run{attempt}"
        traced = memscope_run(["--out", run, "--no-report", PROGRAMS / "pool_vars.py", method])
        assert traced.returncode == 0, traced.stderr
        assert "no final batch" not in traced.stderr
        out = json.loads(traced.stdout)
        processes = table(run / "events", "processes")
        starts = [r for r in processes if r["event"] == "start" and r["ppid"] == out["pid"]]
        workers = [
            r["pid"] for r in starts if method == "fork" or "--multiprocessing-fork" in r["argv"]
        ]
        # every worker that ran (a task: the program's own count) is in the log; so is, in
        # practice, every worker started (a fork worker terminated before it was ever
        # scheduled runs no code at all: seen once, on a machine loaded with a test suite)
        assert set(out["workers"]) <= set(workers), (attempt, starts)
        ended = {r["pid"] for r in processes if r["event"] == "exit"}
        assert set(workers) <= ended, attempt  # each shipped its final batch
        variables = table(run / "events", "variables")
        assert sorted(v["name"] for v in variables) == [f"task{i}" for i in range(8)], attempt
        assert all(v["pid"] in workers and v["size"] >= 1 << 20 for v in variables)


@pytest.mark.parametrize(("how", "status"), [("exit", 3), ("kill", 128 + 9), ("segv", 128 + 11)])
def test_a_process_dying_mid_run_loses_no_buffer_and_run_returns_promptly(tmp_path, how, status):
    run, count = tmp_path / "run", tmp_path / "count"
    traced = memscope_run(["--out", run, "--no-report", PROGRAMS / "crash_alloc.py", how, count])
    returned = time.time()
    assert traced.returncode == status, traced.stderr
    assert returned - count.stat().st_mtime < 2.0  # the count is written just before the death
    made = int(count.read_text())
    assert made == 120_000
    memory = table(run / "events", "memory", columns=["kind", "size"])
    kept = sum(1 for m in memory if m["kind"] == 0 and m["size"] == 1025)  # bytearray(1024)
    assert kept == made  # every one, once
    if how != "exit":  # (os._exit ships its buffers itself: nothing is left to harvest)
        assert "ended without shipping everything; recovered" in traced.stderr


def test_killed_children_and_grandchildren_of_forks_are_harvested(tmp_path):
    run = tmp_path / "run"
    traced = memscope_run(["--out", run, "--no-report", PROGRAMS / "fork_kill.py", "3", "4000"])
    assert traced.returncode == 0, traced.stderr
    pids = json.loads(traced.stdout)["killed"]
    assert len(pids) == 6  # three children and their children, each SIGKILLed mid-work
    memory = table(run / "events", "memory", columns=["pid", "kind", "size"])
    per_pid = {pid: 0 for pid in pids}
    for m in memory:
        if m["pid"] in per_pid and m["kind"] == 0 and m["size"] == 2049:
            per_pid[m["pid"]] += 1
    assert per_pid == {pid: 4000 for pid in pids}
    processes = table(run / "events", "processes")
    exited = {r["pid"] for r in processes if r["event"] == "exit"}
    assert set(pids) <= exited  # each harvested process is closed by an exit row
