"""The flame graph of a 20-million-event run: how long it takes to make and to open.

    python bench/bench_flame.py [--events 20000000] [--depth 12] [--real 300000] [--keep DIR]
                                [--repeat N] [--no-memray]

Part 1, synthetic: a log of ``--events`` memory events (bench_analyzers' heap-like workload:
address slots reused, 2,000 allocation stacks, here ``--depth`` frames deep on a branching
call tree), stored as rec1 chunks the way the broker stores a tracer's. Timed, each as its
own process (``--repeat`` times, the median printed): ``memscope analyze`` (the fold, from
no checkpoint each time; it writes the state checkpoint), ``memscope flamegraph`` (from
that checkpoint), ``memscope flamegraph --temporal`` (from the checkpoint too: the fold's
temporal cells and live blocks), and in headless Chromium the time from navigation to the
drawn graph (``body[data-ready]``), then switching to the inverted view and brushing a window.

Then the largest page the node cap (``MAX_NODES``) lets through, made of stacks that share
no frame below their 15th, opened the same way.

Part 2, against memray (tracemalloc draws no flame graph): one program (``--real`` loop
iterations of small allocations; ``--no-memray`` skips it) traced by ``memscope run
--no-report`` and by ``memray run``; then ``memscope flamegraph`` against ``memray
flamegraph``, and the time each HTML file takes to open in the same Chromium (navigation
to the ``load`` event plus two frames; memray's page loads its scripts from a CDN, which an
offline machine cannot reach: the benchmark says so instead of printing a ratio).
Goal (issue 15): the 20 M-event flame graph opens in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

GOAL_OPEN_S = 2.0
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MEMSCOPE = [sys.executable, "-m", "memscope"]


def deep_stack(s: int, depth: int) -> list[tuple[str, str, int]]:
    """Stack ``s`` of a branching call tree: level k has 3**k distinct frames (max 400)."""
    frames = [("<module>", "bench.py", 1)]
    for level in range(1, depth):
        k = (s * 7 + level) % min(3**level, 400) if level > 1 else s % 3
        frames.append((f"f{level}_{k}", f"pkg/mod{level}_{k % 17}.py", 10 + k))
    return frames


def build_deep_log(path: Path, events: int, depth: int) -> int:
    """bench_analyzers' synthetic log with ``depth``-frame stacks; return the events."""
    import numpy as np
    from bench_analyzers import EVENTS_PER_GROUP, STACKS, _chunk_rows, _group

    from memscope.analyzers.log_builder import LogBuilder
    from memscope.eventlog.log import LogWriter

    rng = np.random.default_rng(2024)
    writer = LogWriter(path)
    b = LogBuilder()
    t_span, pid = 60_000_000_000, 1000
    b.process(pid, 0, argv=["bench.py"], exit_ts_ns=t_span * 2)
    for s in range(1, STACKS + 1):
        b.stack(pid, deep_stack(s, depth))
    for name, table in b.tables().items():
        if table.num_rows:
            writer.append(name, table)
    written, g = 0, 0
    while written < events:
        table = _group(rng, g, min(EVENTS_PER_GROUP, events - written), pid, t_span)
        for batch in _chunk_rows(table, batch_seq=g * (EVENTS_PER_GROUP * 2 // 65536 + 1)):
            writer.append("memory_chunks", batch)
        written += table.num_rows
        g += 1
    writer.close()
    return written


def timed(cmd: list[str]) -> float:
    """Wall seconds of a command (which must succeed)."""
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def runs(xs: list[float]) -> str:
    """`` [runs a, b, c]`` for several runs, else nothing."""
    return "" if len(xs) < 2 else " [runs " + ", ".join(f"{x:.2f}" for x in xs) + "]"


def median_time(
    cmd: list[str], repeat: int, before: Callable[[], object] = lambda: None
) -> tuple[float, list[float]]:
    """(median, all) wall seconds of ``repeat`` runs of a command (``before`` each)."""
    runs = []
    for _ in range(max(1, repeat)):
        before()
        runs.append(timed(cmd))
    return statistics.median(runs), runs


def open_times(pages: dict[str, Path], interact: bool) -> dict[str, dict[str, float]]:
    """Seconds from navigation to a drawn page, per page (best of 3), in headless Chromium."""
    from playwright.sync_api import sync_playwright

    out: dict[str, dict[str, float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, path in pages.items():
            best: dict[str, float] = {}
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                t = time.perf_counter()
                page.goto(path.resolve().as_uri(), wait_until="load", timeout=120_000)
                page.evaluate(
                    "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
                )
                row = {"open_s": time.perf_counter() - t}
                ready = page.locator("body").get_attribute("data-ready-ms")
                if ready:
                    row["ready_s"] = float(ready) / 1000
                if interact and ready:
                    t = time.perf_counter()
                    page.locator(".msflame-invert").click()
                    row["invert_s"] = time.perf_counter() - t
                    brush = page.locator(".msflame-brush")
                    box = brush.bounding_box() if brush.count() else None
                    if box:
                        page.locator(".msflame-invert").click()
                        y = box["y"] + box["height"] / 2
                        t = time.perf_counter()
                        page.mouse.move(box["x"] + box["width"] * 0.2, y)
                        page.mouse.down()
                        page.mouse.move(box["x"] + box["width"] * 0.6, y)
                        page.mouse.up()
                        page.wait_for_selector("#flame[data-window]")
                        row["brush_s"] = time.perf_counter() - t
                page.close()
                best = {k: min(v, best.get(k, v)) for k, v in row.items()}
            out[name] = best
    return out


def largest_page(path: Path) -> int:
    """The largest page the node cap allows: unique 57-frame stacks up to MAX_NODES nodes.

    A binary tree of 15 levels, then a 42-frame chain of frames no other stack shares (the
    worst case for size: every frame is new); returns the node count.
    """
    import random

    from memscope.analyzers.flame import MAX_NODES
    from memscope.exporters.flame_html import flame_page

    rng = random.Random(1)
    frames: list[list[object]] = []
    parent, frame, index, fid = [-1], [-1], {}, {}

    def child(p: int, name: str, line: int) -> int:
        f = fid.setdefault((name, line), len(fid))
        if f == len(frames):
            frames.append([name, f"pkg/{name[:8]}.py", line])
        if (p, f) not in index:
            index[(p, f)] = len(parent)
            parent.append(p)
            frame.append(f)
        return index[(p, f)]

    leaves, s = [], 0
    while len(parent) + 57 <= MAX_NODES:
        node = 0
        for level in range(15):
            node = child(node, f"branch{level}_{(s >> level) & 1}", level)
        for d in range(42):
            node = child(node, f"chain{s}_{d}", d)
        leaves.append(node)
        s += 1
    sizes = [rng.randrange(1, 1 << 20) for _ in leaves]
    model = {
        "format": 1,
        "first_ts_ns": 0,
        "frames": frames,
        "parent": parent,
        "frame": frame,
        "default": "peak",
        "title": "largest page",
        "views": {
            "peak": {
                "label": "peak",
                "node": leaves,
                "bytes": sizes,
                "blocks": [1] * len(leaves),
                "total": sum(sizes),
            }
        },
    }
    path.write_text(flame_page(model), "utf-8")
    return len(parent)


_REAL = """
import sys
keep = []
def leaf(i):
    return [i] * (i % 7 + 1)
def middle(i):
    x = leaf(i)
    if i % 50 == 0:
        keep.append(x)
    return str(i) * 3
for i in range(int(sys.argv[1])):
    middle(i)
"""


def against_memray(tmp: Path, iterations: int) -> dict[str, object]:
    """The same program under memscope and memray: flame graph time and page open time."""
    prog = tmp / "real.py"
    prog.write_text(_REAL)
    run = tmp / "real-run"
    trace_s = timed(
        [*MEMSCOPE, "run", "--out", str(run), "--no-report", str(prog), str(iterations)]
    )
    stats = json.loads(
        subprocess.run(
            [*MEMSCOPE, "stats", str(run), "--json"], check=True, capture_output=True, text=True
        ).stdout
    )["total"]
    ours = timed([*MEMSCOPE, "flamegraph", str(run), "-o", str(tmp / "ms.html")])
    ours_again = timed([*MEMSCOPE, "flamegraph", str(run), "-o", str(tmp / "ms.html")])
    capture = tmp / "real.bin"
    memray_trace_s = timed(
        [
            sys.executable,
            "-m",
            "memray",
            "run",
            "--trace-python-allocators",
            "-o",
            str(capture),
            str(prog),
            str(iterations),
        ]
    )
    theirs = timed(
        [
            sys.executable,
            "-m",
            "memray",
            "flamegraph",
            "-f",
            "-o",
            str(tmp / "memray.html"),
            str(capture),
        ]
    )
    pages = open_times({"memscope": tmp / "ms.html", "memray": tmp / "memray.html"}, False)
    return {
        "iterations": iterations,
        "events": stats["total_allocations"] + stats["total_deallocations"],
        "memscope_trace_s": trace_s,
        "memray_trace_s": memray_trace_s,
        "memscope_flamegraph_s": min(ours, ours_again),
        "memray_flamegraph_s": theirs,
        "pages": pages,
        "memray_cdn_scripts": len(
            re.findall(r'<script[^>]*src="https?://', (tmp / "memray.html").read_text("utf-8"))
        ),
        "html_bytes": {
            "memscope": (tmp / "ms.html").stat().st_size,
            "memray": (tmp / "memray.html").stat().st_size,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--real", type=int, default=300_000)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each memscope command (the median is printed)",
    )
    parser.add_argument("--no-memray", action="store_true", help="skip part 2")
    args = parser.parse_args(argv)
    print(
        f"# bench_flame {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="memscope-flame-") as name:
        tmp = args.keep or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        log = tmp / "synthetic" / "events"
        events = build_deep_log(log, args.events, args.depth)
        run = log.parent
        analyze_s, analyze_all = median_time(  # each run folds the log: no checkpoint
            [*MEMSCOPE, "analyze", str(run)],
            args.repeat,
            lambda: shutil.rmtree(log / "_state", ignore_errors=True),
        )
        flame_s, flame_all = median_time(
            [*MEMSCOPE, "flamegraph", str(run), "-o", str(tmp / "peak.html")], args.repeat
        )
        temporal_s, temporal_all = median_time(
            [*MEMSCOPE, "flamegraph", str(run), "--temporal", "-o", str(tmp / "temporal.html")],
            args.repeat,
        )
        pages = open_times({"peak": tmp / "peak.html", "temporal": tmp / "temporal.html"}, True)
        print(f"synthetic log: {events:,} events, stacks {args.depth} frames deep")
        print(f"  memscope analyze (fold + six files)      {analyze_s:6.2f} s{runs(analyze_all)}")
        print(
            f"  memscope flamegraph (from the state)     {flame_s:6.2f} s  "
            f"({(tmp / 'peak.html').stat().st_size / 1024:.0f} KiB){runs(flame_all)}"
        )
        print(
            f"  memscope flamegraph --temporal (state)   {temporal_s:6.2f} s  "
            f"({(tmp / 'temporal.html').stat().st_size / 1024:.0f} KiB){runs(temporal_all)}"
        )
        for page, row in pages.items():
            figures = ", ".join(f"{k} {v:.3f} s" for k, v in row.items())
            verdict = "OK" if row["open_s"] < GOAL_OPEN_S else "OVER the 2 s goal"
            print(f"  Chromium, {page:8s}: {figures}  [{verdict}]")
        nodes = largest_page(tmp / "largest.html")
        row = open_times({"largest": tmp / "largest.html"}, True)["largest"]
        figures = ", ".join(f"{k} {v:.3f} s" for k, v in row.items())
        print(
            f"  Chromium, the largest page the node cap allows ({nodes:,} nodes, "
            f"{(tmp / 'largest.html').stat().st_size / 2**20:.1f} MiB): {figures}"
        )
        if args.no_memray:
            print(f"# load average after: {os.getloadavg()[0]:.1f}")
            return 0
        real = against_memray(tmp, args.real)
        print(
            f"real program, {real['events']:,} events "
            f"({real['iterations']:,} iterations), memscope vs memray 1.20:"
        )
        ms, mr = real["memscope_flamegraph_s"], real["memray_flamegraph_s"]
        print(
            f"  flame graph from a finished trace: memscope {ms:.2f} s, memray {mr:.2f} s "
            f"({ms / mr:.2f}x memray's time)"
        )
        p = real["pages"]
        cdn = real["memray_cdn_scripts"]
        caveat = (
            f" (not comparable: memray's page loads {cdn} scripts from a CDN, so it "
            "draws nothing offline)"
            if cdn
            else f" ({p['memscope']['open_s'] / p['memray']['open_s']:.2f}x)"
        )
        print(
            f"  opening the HTML offline: memscope {p['memscope']['open_s']:.3f} s, memray "
            f"{p['memray']['open_s']:.3f} s{caveat}; sizes "
            f"{real['html_bytes']['memscope'] / 1024:.0f} KiB vs "
            f"{real['html_bytes']['memray'] / 1024:.0f} KiB"
        )
        print(
            f"  tracing: memscope run {real['memscope_trace_s']:.2f} s, memray run "
            f"--trace-python-allocators {real['memray_trace_s']:.2f} s"
        )
    print(f"# load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
