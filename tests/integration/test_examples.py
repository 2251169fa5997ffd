"""Every example runs under ``memscope run`` (quick size) and shows what it is meant to show.

The runs start together once per module (a few at a time, they are mostly waiting on the
analyzers and exporters) and each test then checks one run directory: the six analysis
files (valid against their schemas), the four reports, and the example's own point (its
variable names, scopes, threads or processes). ``make demo`` is run as the Makefile runs
it (``make -o install``: the .venv under test is not rebuilt), and one example also runs by
itself, exporting through the tracker's methods.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from memscope.analyzers import ANALYZERS
from memscope.analyzers.common import load_schema
from memscope.analyzers.views import connect

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
REPORTS = (
    "memory_analysis.svg",
    "lifecycle_timeline.svg",
    "memory_snapshot.json",
    "dashboard.html",
)
RUN_TIMEOUT_S = 400
PARALLEL = 3

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass
class Run:
    """One finished example run."""

    out: Path
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> None:
        assert self.returncode == 0, f"exit {self.returncode}\n{self.stdout}\n{self.stderr}"


def _run(argv: list[str], cwd: Path, out: Path) -> Run:
    env = dict(os.environ)
    env.pop("MEMSCOPE_BROKER_ADDRESS", None)
    env.pop("MEMSCOPE_LOG_DIR", None)
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return Run(out, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Run]]:
    base = tmp_path_factory.mktemp("examples")
    memscope = [sys.executable, "-m", "memscope", "run"]
    jobs: dict[str, tuple[list[str], Path, Path]] = {}
    for name in (
        "lifecycle",
        "complex_structures",
        "concurrent_threads",
        "web_server",
        "data_pipeline",
        "multiprocess_service",
        "ctypes_ffi",
    ):
        out = base / name
        jobs[name] = ([*memscope, "--out", str(out), str(EXAMPLES / f"{name}.py")], ROOT, out)
    # make demo, exactly as the Makefile runs it, against this interpreter's environment.
    demo = base / "demo"
    jobs["demo"] = (
        [
            "make",
            "--no-print-directory",
            "-o",
            "install",
            "demo",
            f"PY={sys.executable}",
            f"DEMO_DIR={demo}",
        ],
        ROOT,
        demo,
    )
    # The basic example by itself: memscope.init() in the script, exports by the tracker.
    alone = base / "standalone"
    alone.mkdir()
    jobs["standalone"] = (
        [sys.executable, str(EXAMPLES / "basic_usage.py")],
        alone,
        alone / "MemoryAnalysis" / "basic",
    )
    pool = ThreadPoolExecutor(PARALLEL)
    futures = {name: pool.submit(_run, *job) for name, job in jobs.items()}
    pool.shutdown(wait=False)
    return futures


def finished(runs: dict[str, Future[Run]], name: str) -> Run:
    run = runs[name].result(timeout=RUN_TIMEOUT_S * 3)
    run.check()
    for analyzer in ANALYZERS.values():
        path = run.out / analyzer.file_name()
        assert path.is_file(), f"{name}: no {path.name}"
        jsonschema.validate(json.loads(path.read_text()), load_schema(analyzer.file_kind))
    for report in REPORTS:
        assert (run.out / report).stat().st_size > 0, f"{name}: no {report}"
    return run


def variables(run: Run) -> list[dict[str, object]]:
    con = connect(run.out)
    cursor = con.execute("SELECT * FROM variables ORDER BY created_ts_ns")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_make_demo_runs_basic_usage_and_prints_where_the_dashboard_is(runs):
    run = finished(runs, "demo")
    assert f"dashboard:  {run.out}/dashboard.html" in run.stdout
    assert "<html" in (run.out / "dashboard.html").read_text()[:2000].lower()
    by_name = {v["name"]: v for v in variables(run)}
    assert {name: by_name[name]["type_name"] for name in by_name} == {
        "numbers_list": "list[int]",
        "text_string": "str",
        "boxed_value": "bytearray",
        "user_data": "dict[str, str]",
    }
    assert by_name["boxed_value"]["size"] >= 64 * 1024
    assert all(v["scope"] == "main" for v in by_name.values())
    assert re.search(r"peak memory: +[\d,]+ bytes", run.stdout)


def test_basic_usage_by_itself_exports_through_the_tracker(runs):
    run = runs["standalone"].result(timeout=RUN_TIMEOUT_S * 3)
    run.check()
    for suffix in ("memory_analysis.svg", "lifecycle_timeline.svg", "memory_snapshot.json"):
        path = run.out / f"basic_{suffix}"
        assert path.stat().st_size > 0, f"no {path.name}: {run.stdout}\n{run.stderr}"
    snapshot = json.loads((run.out / "basic_memory_snapshot.json").read_text())
    assert "memory_hierarchy" in snapshot
    assert "list[int]" in run.stdout  # get_memory_by_type() printed the tracked types


def test_lifecycle_deaths_scopes_and_aliases(runs):
    run = finished(runs, "lifecycle")
    rows = variables(run)
    by_name = {v["name"]: v for v in rows}
    local, returned = by_name["local_string"], by_name["return_string"]
    assert local["scope"] == returned["scope"] == "create_and_drop_string"
    assert local["died_ts_ns"] is not None and returned["died_ts_ns"] is not None
    assert local["died_ts_ns"] < returned["died_ts_ns"]  # freed on return; the other lived on
    loops = [v for v in rows if v["name"] == "loop_vec"]
    assert len(loops) == 5 and all(v["scope"] == "process_data_in_loop" for v in loops)
    assert all(v["died_ts_ns"] is not None for v in loops)
    assert by_name["scratch"]["scope"] == "temporary_work"
    lifetime = json.loads((run.out / "snapshot_lifetime.json").read_text())
    assert any(
        {"return_string", "transferred_string"} <= set(a["names"]) for a in lifetime["aliases"]
    )
    scopes = {row[0] for row in connect(run.out).execute("SELECT name FROM scopes").fetchall()}
    assert {"process_data_in_loop", "temporary_work"} <= scopes


def test_complex_structures_types_and_containment(runs):
    run = finished(runs, "complex_structures")
    by_name = {v["name"]: v for v in variables(run)}
    assert by_name["users"]["type_name"] == "dict[int, __main__.User]"
    assert by_name["samples_array"]["type_name"] == "numpy.ndarray[float64]"
    assert by_name["request_queue"]["type_name"] == "collections.deque[str]"
    parts = {
        by_name[n]["var_id"] for n in ("first_user", "users", "active_sessions", "request_queue")
    }
    assert parts <= set(by_name["database"]["contains"])
    (numpy_blocks,) = (
        connect(run.out)
        .execute("SELECT count(*) FROM allocations WHERE domain = 'numpy' AND size >= 40000")
        .fetchone()
    )
    assert numpy_blocks >= 1  # the array's 5,000 float64 data buffer
    complex_types = json.loads((run.out / "snapshot_complex_types.json").read_text())
    suggested = {
        t["type_name"]: {s["kind"] for s in t["suggestions"]}
        for t in complex_types["complex_type_analysis"]
    }
    assert "dict[int, __main__.User]" in suggested
    assert "slots" in suggested["__main__.User"]  # 11 tracked instances of a plain class
    assert "homogeneous_array" in suggested["list[float]"]  # 5,000 boxed floats


def test_concurrent_threads_are_named_and_each_tracks_its_data(runs):
    run = finished(runs, "concurrent_threads")
    con = connect(run.out)
    threads = {row[0]: row[1] for row in con.execute("SELECT name, tid FROM threads").fetchall()}
    workers = {f"worker-{i}" for i in range(4)}
    assert workers <= set(threads)
    data = [v for v in variables(run) if v["name"] == "thread_data"]
    assert {v["tid"] for v in data} == {threads[w] for w in workers}
    scopes = {v["scope"] for v in variables(run) if v["name"] == "words"}
    assert scopes == {f"worker-{i} processing" for i in range(4)}


def test_web_server_cache_evictions_are_deaths(runs):
    run = finished(runs, "web_server")
    match = re.search(r"cache: (\d+) hits, (\d+) misses, (\d+) entries", run.stdout)
    assert match, run.stdout
    hits, misses, entries = (int(g) for g in match.groups())
    assert hits > 0 and misses > entries
    rows = variables(run)
    responses = [v for v in rows if v["name"] == "response_data"]
    assert len(responses) == misses  # one tracked body per miss
    # The evicted bodies died while the server was still running.
    cache = next(v for v in rows if v["name"] == "cache")
    evicted = [
        v
        for v in responses
        if v["died_ts_ns"] is not None and v["died_ts_ns"] < cache["died_ts_ns"]
    ]
    assert len(evicted) >= misses - entries
    names = {r[0] for r in connect(run.out).execute("SELECT name FROM threads").fetchall()}
    assert "http-server" in names


def test_data_pipeline_one_scope_per_stage(runs):
    run = finished(runs, "data_pipeline")
    by_name = {v["name"]: v for v in variables(run)}
    stages = {
        "raw_data": "load",
        "parsed_data": "parse",
        "processed_data": "process",
        "results": "report",
    }
    assert {name: by_name[name]["scope"] for name in stages} == stages
    # The raw bytes die once parsed, before the report stage starts.
    assert by_name["raw_data"]["died_ts_ns"] < by_name["results"]["created_ts_ns"]
    lifetime = json.loads((run.out / "snapshot_lifetime.json").read_text())
    per_scope = {s["name"]: s for s in lifetime["scope_analysis"]["scopes"]}
    for name, scope in stages.items():
        assert per_scope[scope]["variable_count"] == 1
        assert per_scope[scope]["total_size_bytes"] == by_name[name]["size"]


def test_multiprocess_service_traces_fork_and_spawn_children(runs):
    run = finished(runs, "multiprocess_service")
    con = connect(run.out)
    processes = con.execute(
        "SELECT pid, ppid, argv, end_ts_ns FROM processes ORDER BY start_ts_ns"
    ).fetchall()
    parent = next(
        p
        for p in processes
        if p[2]
        and p[2][-1].endswith("multiprocess_service.py")
        and all(q[0] != p[1] for q in processes)
    )
    children = [p for p in processes if p[1] == parent[0]]
    assert all(p[3] is not None for p in processes), "every process sent its exit row"
    spawned = [p for p in children if "--multiprocessing-fork" in (p[2] or [])]
    forked = [p for p in children if p[2] == parent[2]]
    assert len(spawned) == 1 and len(forked) == 2, processes
    rows = variables(run)
    payload_pids = {v["pid"] for v in rows if v["name"] == "payload"}
    assert payload_pids == {p[0] for p in forked}
    assert [v["pid"] for v in rows if v["name"] == "index"] == [spawned[0][0]]
    assert "indexer pid" in run.stdout and "(traced)" in run.stdout


def test_ctypes_ffi_boundary_events(runs):
    run = finished(runs, "ctypes_ffi")
    con = connect(run.out)
    events = dict(con.execute("SELECT event, count(*) FROM ffi GROUP BY event").fetchall())
    assert events.get("ctypes.dlopen", 0) >= 1
    assert events.get("ctypes.dlsym", 0) >= 4  # malloc, free, memset, strlen, qsort
    assert events.get("ctypes.create_string_buffer", 0) == 1
    ffi = json.loads((run.out / "snapshot_unsafe_ffi.json").read_text())
    assert ffi["summary"]["boundary_events"] == sum(events.values())
    names = {v["name"] for v in variables(run)}
    assert {"c_buffer", "c_array"} <= names


def test_every_example_has_a_make_target():
    makefile = (ROOT / "Makefile").read_text()
    for script in sorted(EXAMPLES.glob("[!_]*.py")):
        assert f":{script.stem}" in makefile, f"no run- target for {script.name}"
    shutil.which("make") or pytest.skip("make is not installed")
    targets = subprocess.run(
        [
            "make",
            "-n",
            "-o",
            "install",
            "run-basic",
            "run-lifecycle",
            "run-complex",
            "run-concurrent",
            "run-webserver",
            "run-pipeline",
            "run-multiprocess",
            "run-ffi",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(re.findall(r"-m memscope run --out MemoryAnalysis/\w+", targets)) == 8


def test_make_demo_and_bench_name_files_that_exist():
    makefile = (ROOT / "Makefile").read_text()
    scripts = re.findall(
        r"\$\(PY\)(?: -m memscope run --out \S+)? ((?:examples|bench)/\S+\.py)", makefile
    )
    assert {"examples/basic_usage.py", "bench/run_all.py"} <= set(scripts)
    for script in scripts:
        assert (ROOT / script).is_file(), f"the Makefile runs {script}, which does not exist"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--only", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "choose from tracer" in done.stderr
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run_all
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for script, _ in run_all.BENCHES.values():
        assert (ROOT / "bench" / script).is_file(), script
