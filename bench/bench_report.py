"""How long reports take to write and the dashboard to become interactive, at scale.

    python bench/bench_report.py [--vars 500] [--allocs 1000000] [--runs 3] [--dir DIR]
                                 [--no-compare]

With ``--dir`` the six analysis files of a real run are used; otherwise a synthetic set for a
run of ``--allocs`` allocations and ``--vars`` tracked variables is written (the analysis files
hold aggregates, so their size follows the variables, sites and time buckets, not the raw
allocation count). Measured: loading the six files, each exporter's build and render, the
dashboard's size, and in headless Chromium the time from navigation start until the page is
interactive (first panel drawn, controls live), then until the 500-variable panel is drawn.
For scale, the same run also times the reports of memray (``memray flamegraph``/``table``) and
tracemalloc (``Snapshot.statistics``) for a workload of the same number of allocations.
Goal: interactive in under 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

WORKLOAD = """
import sys
n = int(sys.argv[1])
keep = []
for i in range(n):
    b = bytearray(16 + (i % 64))
    if i % 16 == 0:
        keep.append(b)
"""


def build_log(events_dir: Path, allocs: int, n_vars: int) -> None:
    """A log of ``allocs`` allocations (90% freed) over 200 stacks and ``n_vars`` variables."""
    import numpy as np
    import pyarrow as pa

    from memscope.analyzers.log_builder import LogBuilder
    from memscope.eventlog.log import LogWriter
    from memscope.protocol.log_schema import TABLES
    from memscope.protocol.wire import DOMAIN_OBJ, KIND_ALLOC, KIND_FREE

    pid, t0, span = 4242, 1_000_000_000, 10_000_000_000
    b = LogBuilder()
    b.process(pid, t0, argv=["bench_app.py"], exit_ts_ns=t0 + span)
    b.thread(pid, 1, t0, "MainThread")
    stacks = [
        b.stack(pid, [("<module>", "bench_app.py", 1), (f"work_{i}", "bench_app.py", 10 + i)])
        for i in range(200)
    ]
    types = ["list[int]", "dict[str, int]", "str", "bytes", "app.Model", "set[str]"]
    for i in range(n_vars):
        b.variable(
            pid,
            t0 + i * (span // (n_vars + 1)),
            f"var_{i}",
            types[i % len(types)],
            address=0x7000_0000 + 64 * i,
            size=64 + (i * 37) % 4096,
            scope=f"scope_{i % 12}",
            stack_id=stacks[i % len(stacks)],
        )
    tables = b.tables()
    rng = np.random.default_rng(7)
    ts = t0 + np.sort(rng.integers(0, span, allocs))
    sizes = rng.lognormal(5, 1.5, allocs).astype(np.uint64) + 1
    addresses = 0x1000_0000 + np.arange(allocs, dtype=np.uint64) * 16
    freed = rng.random(allocs) < 0.9
    free_ts = np.minimum(ts + rng.integers(1, 50_000_000, allocs), t0 + span)[freed]
    all_ts = np.concatenate([ts, free_ts])
    order = np.argsort(all_ts, kind="stable")
    n = len(all_ts)
    columns = {
        "pid": np.full(n, pid, np.uint32),
        "tid": np.ones(n, np.uint64),
        "seq": np.arange(n, dtype=np.uint64),
        "ts_ns": all_ts[order].astype(np.int64),
        "kind": np.concatenate(
            [np.full(allocs, KIND_ALLOC, np.uint8), np.full(len(free_ts), KIND_FREE, np.uint8)]
        )[order],
        "domain": np.full(n, DOMAIN_OBJ, np.uint8),
        "address": np.concatenate([addresses, addresses[freed]])[order],
        "old_address": np.zeros(n, np.uint64),
        "size": np.concatenate([sizes, np.zeros(len(free_ts), np.uint64)])[order],
        "stack_id": np.concatenate(
            [
                np.array(stacks, np.uint32)[rng.integers(0, 200, allocs)],
                np.zeros(len(free_ts), np.uint32),
            ]
        )[order],
    }
    tables["memory"] = pa.table(columns, schema=TABLES["memory"])
    writer = LogWriter(events_dir)
    for name, table in tables.items():
        if table.num_rows:
            writer.append(name, table)
    writer.close()


def time_exporters(source: Path, out: Path, runs: int = 1) -> list[tuple[str, float, float]]:
    """(step, wall seconds, CPU seconds) per exporter: medians over ``runs`` repetitions.

    CPU time is the process's (all threads, so vl-convert's renderer is included); on a busy
    machine it is the steadier of the two.
    """
    from memscope.exporters import EXPORTERS, exporter, load_reports

    def timed(func: Any) -> tuple[float, float]:
        walls, cpus = [], []
        for _ in range(runs):
            t, c = time.perf_counter(), time.process_time()
            func()
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        return statistics.median(walls), statistics.median(cpus)

    reports = load_reports(source)
    rows = [("load the six files", *timed(lambda: load_reports(source)))]
    for module, cls in EXPORTERS:
        exp = exporter(module, cls)

        def write(exp: Any = exp) -> None:
            obj = exp.build(reports)
            with (out / exp.filename).open("wb") as fh:
                exp.render(obj, fh)

        rows.append((exp.filename, *timed(write)))
    rows.append(("all reports", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    return rows


def time_dashboard(page_path: Path, runs: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    ready, variables, filtering = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            ready.append(page.evaluate("window.memscopeReady") / 1000)
            t = time.perf_counter()
            page.click("#nav-variables")
            page.wait_for_selector("#panel-variables[data-ready='1']", timeout=60_000)
            variables.append(time.perf_counter() - t)
            t = time.perf_counter()
            page.fill("#table-variables input", "var_49")
            page.wait_for_function(
                "document.querySelector('#table-variables .count').textContent.includes(' of ')"
            )
            filtering.append(time.perf_counter() - t)
            context.close()
        browser.close()
    return {
        "interactive (navigation start → first panel drawn)": statistics.median(ready),
        "open the variables panel (lifetimes chart, tables)": statistics.median(variables),
        "filter the variables table (incl. 120 ms debounce)": statistics.median(filtering),
    }


def time_memray(allocs: int, work: Path) -> float | None:
    try:
        import memray  # noqa: F401
    except ImportError:
        return None
    script = work / "workload.py"
    script.write_text(WORKLOAD)
    capture = work / "capture.bin"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "memray",
            "run",
            "-q",
            "-f",
            "-o",
            str(capture),
            str(script),
            str(allocs),
        ],
        check=True,
        capture_output=True,
    )
    t = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "memray",
            "flamegraph",
            "-f",
            "-o",
            str(work / "flame.html"),
            str(capture),
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t


def time_tracemalloc(allocs: int) -> float:
    code = (
        "import time, tracemalloc, sys\n"
        "tracemalloc.start(8)\n"
        + WORKLOAD.replace("n = int(sys.argv[1])", f"n = {allocs}")
        + "t = time.perf_counter()\n"
        "snap = tracemalloc.take_snapshot()\n"
        "stats = snap.statistics('traceback')\n"
        "lines = [str(s) for s in stats[:50]]\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vars", type=int, default=500)
    parser.add_argument("--allocs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="six analysis files to use")
    parser.add_argument("--no-compare", action="store_true", help="skip memray/tracemalloc")
    parser.add_argument(
        "--reports-only",
        action="store_true",
        help="time the report files only (no browser, no comparisons)",
    )
    parser.add_argument(
        "--from-log",
        action="store_true",
        help="build a real log of --allocs events and run the analyzers on it",
    )
    args = parser.parse_args()

    from memscope.exporters.sample_reports import write_sample_reports

    with tempfile.TemporaryDirectory(prefix="memscope-bench-") as tmp:
        work = Path(tmp)
        source = args.dir or work / "analysis"
        analyze_s = None
        if args.from_log:
            from memscope.analyzers import run_all

            build_log(work / "run" / "events", args.allocs, args.vars)
            t = time.perf_counter()
            run_all(work / "run" / "events", source)
            analyze_s = time.perf_counter() - t
            what = f"a log of {args.allocs:,} allocations, {args.vars} tracked variables"
        elif args.dir is None:
            write_sample_reports(source, n_vars=args.vars, n_allocs=args.allocs)
            what = f"synthetic analysis of {args.allocs:,} allocations, {args.vars} variables"
        else:
            what = str(args.dir)
        out = work / "out"
        out.mkdir()
        print(f"# memscope reports — {what}")
        if analyze_s is not None:
            print(f"{'memscope analyze (six JSON files, for reference)':58} {analyze_s:9.3f}")
        rows = time_exporters(source, out, args.runs)
        size = (out / "dashboard.html").stat().st_size
        page = {} if args.reports_only else time_dashboard(out / "dashboard.html", args.runs)
        memray_s = tracemalloc_s = None
        if not (args.no_compare or args.reports_only):
            memray_s = time_memray(args.allocs, work)
            tracemalloc_s = time_tracemalloc(args.allocs)
    total = rows[-1][1]
    print(f"{'step (median of ' + str(args.runs) + ' runs)':58} {'wall s':>9} {'CPU s':>9}")
    for name, seconds, cpu in rows:
        print(f"{name:58} {seconds:9.3f} {cpu:9.3f}")
    print(f"{'dashboard.html size':58} {size / 1e6:8.2f}M")
    for name, seconds in page.items():
        print(f"{name:58} {seconds:9.3f}")
    if page:
        interactive = next(iter(page.values()))
        print(f"goal: interactive < 2 s -> {'met' if interactive < 2 else 'NOT met'}")
    if memray_s is not None:
        print(
            f"{'memray flamegraph HTML for the same allocation count':58} {memray_s:9.3f}"
            f"   memscope all reports / memray = {total / memray_s:.2f}"
        )
    if tracemalloc_s is not None:
        print(
            f"{'tracemalloc snapshot + statistics (same workload)':58} {tracemalloc_s:9.3f}"
            f"   memscope all reports / tracemalloc = {total / tracemalloc_s:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
