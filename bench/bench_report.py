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

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

WORKLOAD = """
import sys
n = int(sys.argv[1])
keep = []
for i in range(n):
    b = bytearray(16 + (i % 64))
    if i % 16 == 0:
        keep.append(b)
"""


def time_exporters(source: Path, out: Path) -> list[tuple[str, float]]:
    from memscope.exporters import EXPORTERS, exporter, load_reports

    rows = []
    t = time.perf_counter()
    reports = load_reports(source)
    rows.append(("load the six files", time.perf_counter() - t))
    total = rows[0][1]
    for module, cls in EXPORTERS:
        exp = exporter(module, cls)
        t = time.perf_counter()
        obj = exp.build(reports)
        with (out / exp.filename).open("wb") as fh:
            exp.render(obj, fh)
        elapsed = time.perf_counter() - t
        rows.append((f"{exp.filename}", elapsed))
        total += elapsed
    rows.append(("all reports", total))
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
                "document.querySelector('#table-variables .count').textContent.includes(' of ')")
            filtering.append(time.perf_counter() - t)
            context.close()
        browser.close()
    return {"interactive (navigation start → first panel drawn)": statistics.median(ready),
            "open the variables panel (lifetimes chart, tables)": statistics.median(variables),
            "filter the variables table (incl. 120 ms debounce)": statistics.median(filtering)}


def time_memray(allocs: int, work: Path) -> float | None:
    try:
        import memray  # noqa: F401
    except ImportError:
        return None
    script = work / "workload.py"
    script.write_text(WORKLOAD)
    capture = work / "capture.bin"
    subprocess.run([sys.executable, "-m", "memray", "run", "-q", "-f", "-o", str(capture),
                    str(script), str(allocs)], check=True, capture_output=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "memray", "flamegraph", "-f", "-o",
                    str(work / "flame.html"), str(capture)], check=True, capture_output=True)
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
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    return float(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vars", type=int, default=500)
    parser.add_argument("--allocs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="six analysis files to use")
    parser.add_argument("--no-compare", action="store_true", help="skip memray/tracemalloc")
    args = parser.parse_args()

    from memscope.exporters.testing import write_sample_reports

    with tempfile.TemporaryDirectory(prefix="memscope-bench-") as tmp:
        work = Path(tmp)
        source = args.dir or work / "analysis"
        if args.dir is None:
            write_sample_reports(source, n_vars=args.vars, n_allocs=args.allocs)
        out = work / "out"
        out.mkdir()
        what = f"{args.dir}" if args.dir else (
            f"synthetic run: {args.allocs:,} allocations, {args.vars} tracked variables")
        print(f"# memscope reports — {what}")
        rows = time_exporters(source, out)
        size = (out / "dashboard.html").stat().st_size
        page = time_dashboard(out / "dashboard.html", args.runs)
        memray_s = tracemalloc_s = None
        if not args.no_compare:
            memray_s = time_memray(args.allocs, work)
            tracemalloc_s = time_tracemalloc(args.allocs)
    total = rows[-1][1]
    print(f"{'step':58} {'seconds':>9}")
    for name, seconds in rows:
        print(f"{name:58} {seconds:9.3f}")
    print(f"{'dashboard.html size':58} {size / 1e6:8.2f}M")
    for name, seconds in page.items():
        print(f"{name:58} {seconds:9.3f}")
    interactive = next(iter(page.values()))
    print(f"goal: interactive < 2 s -> {'met' if interactive < 2 else 'NOT met'}")
    if memray_s is not None:
        print(f"{'memray flamegraph HTML for the same allocation count':58} {memray_s:9.3f}"
              f"   memscope all reports / memray = {total / memray_s:.2f}")
    if tracemalloc_s is not None:
        print(f"{'tracemalloc snapshot + statistics (same workload)':58} {tracemalloc_s:9.3f}"
              f"   memscope all reports / tracemalloc = {total / tracemalloc_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
