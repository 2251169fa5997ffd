"""Tracer overhead: slowdown against plain Python, side by side with tracemalloc and memray.

Each configuration runs in a fresh child process; the child times only the workload (after
the tracer is set up), so interpreter startup and tracer start/stop do not count. Every
configuration runs ``--repeat`` times and the best time is kept.

    python bench/bench_tracer.py [--repeat 3] [--scale 1.0] [--only alloc,mixed]
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

from _common import overhead_arguments, run_script

WORKLOADS = {
    # Allocation-heavy pure Python: small dicts, lists, tuples and strings, most short-lived.
    "alloc": """
        def workload(scale):
            keep = []
            for i in range(int(400_000 * scale)):
                item = {"id": i, "tags": [i, i + 1], "pair": (i, str(i))}
                keep.append(item)
                if len(keep) > 2_000:
                    keep = []
            return len(keep)
    """,
    # Mixed: json, regex, small classes, a numpy step.
    "mixed": """
        import json, re
        import numpy as np

        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        WORD = re.compile(r"[a-z]+(\\d+)")

        def workload(scale):
            total = 0
            for i in range(int(3_000 * scale)):
                doc = json.dumps({"n": i, "items": [f"item{j}" for j in range(20)]})
                back = json.loads(doc)
                total += sum(int(m.group(1)) for m in WORD.finditer(" ".join(back["items"])))
                pts = [Point(j, j * 2) for j in range(30)]
                total += sum(p.x for p in pts)
                arr = np.arange(2_000, dtype=np.float64) * i
                total += int(arr[-1] > 0)
            return total
    """,
}

SETUPS = {
    "plain": "",
    # No tracing, but the modules memscope.init loads into the traced process (the transport:
    # pyzmq, msgpack): more objects for every full garbage collection to walk.
    "plain + memscope imported": "import memscope.producer.publisher",
    "tracemalloc(1)": "import tracemalloc; tracemalloc.start(1)",
    "memray": None,  # runs under `python -m memray run --trace-python-allocators`
    "memscope full": "MODE = 'full'",
    "memscope aggregated": "MODE = 'aggregated'",
    "memscope sampled": "MODE = 'sampled'",
    # The floor under every mode: hooks, clock and stack walk, nothing stored.
    "memscope hooks-only": "MODE = 'hooks-only'",
    # The whole pipeline: memscope.init() with its embedded broker writing a log.
    "pipeline full": "PIPELINE = 'full'",
    "pipeline aggregated": "PIPELINE = 'aggregated'",
}

CHILD = """
import sys, threading, time
{workload}
{setup}
stop_drain = threading.Event()
if "MODE" in globals():
    from memscope.producer import capture
    capture.start(MODE)
    def _drainer():
        capture.ignore_current_thread()
        while not stop_drain.wait(0.1):
            capture.drain()
    drainer = threading.Thread(target=_drainer, daemon=True)
    drainer.start()
if "PIPELINE" in globals():
    import memscope, tempfile
    memscope.init(mode=PIPELINE, log_dir=tempfile.mkdtemp(prefix="memscope-bench-"))
workload(0.05)  # warm up caches, imports and specialization
t0, c0 = time.perf_counter(), time.process_time()
workload({scale})
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
shipped = elapsed
if "PIPELINE" in globals():
    # until the broker has every event of the workload (the process's own stop: the final
    # flush and acknowledgement; the embedded broker's shutdown is not counted)
    from memscope.api import tracker
    tracker._session.stop(60.0)
    shipped = time.perf_counter() - t0
stop_drain.set()
print("ELAPSED", elapsed, cpu, shipped)
"""


def run_child(workload: str, setup_name: str, scale: float) -> tuple[float, float, float]:
    setup = SETUPS[setup_name]
    code = CHILD.format(
        workload=textwrap.dedent(WORKLOADS[workload]), setup=setup or "", scale=scale
    )

    def command(script: Path, tmp: Path) -> list[str]:
        if setup is None:
            return [
                sys.executable,
                "-m",
                "memray",
                "run",
                "--trace-python-allocators",
                "-q",
                "-o",
                str(tmp / "out.bin"),
                str(script),
            ]
        return [sys.executable, str(script)]

    wall, cpu, in_log = run_script(
        code, command, {**os.environ, "PYTHONHASHSEED": "0"}, 600, f"{setup_name} on {workload}"
    )
    return wall, cpu, in_log


def main(argv: list[str] | None = None) -> int:
    args = overhead_arguments(__doc__.splitlines()[0], WORKLOADS, SETUPS).parse_args(argv)
    workloads = [w for w in args.only.split(",") if w]
    setups = [s for s in args.setups.split(",") if s]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for workload in workloads:
        results[workload] = {}
        for setup in setups:
            # the best run is the one least disturbed by other load on the machine
            runs = [run_child(workload, setup, args.scale) for _ in range(args.repeat)]
            results[workload][setup] = {
                "wall": min(r[0] for r in runs),
                "cpu": min(r[1] for r in runs),
                "in log": min(r[2] for r in runs),
            }
    print("best of", args.repeat, "runs; wall = elapsed time, cpu = process CPU time (all")
    print("threads of the traced process; an embedded broker runs in another process);")
    print("in log = until the broker has every event (pipelines; others: their wall)")
    header = f"{'configuration':<22}" + "".join(
        f"{w + ' wall':>20}{w + ' cpu':>20}{w + ' in log':>20}" for w in workloads
    )
    print(header)
    print("-" * len(header))
    for setup in setups:
        cells = []
        for workload in workloads:
            for key in ("wall", "cpu", "in log"):
                t = results[workload][setup][key]
                base = results[workload].get("plain", {}).get("wall" if key == "in log" else key)
                ratio = f"{t / base:5.2f}x" if base else "   n/a"
                cells.append(f"{t * 1000:9.0f}ms {ratio:>7}")
        print(f"{setup:<22}" + "".join(f"{c:>20}" for c in cells))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
