"""Native mode overhead: slowdown against plain Python, side by side with memray --native.

Each configuration runs in a fresh child process that measures only the workload (after the
tracer is set up) in CPU time of the whole process -- every thread, so a tracer's background
writer counts too -- which stays comparable on a loaded machine where wall time does not.
The configurations run in turn ``--repeat`` times and the best time of each is kept.
memscope's native configurations run with the allocator shim preloaded (what ``memscope run
--native`` does) and drain the capture every 0.1 s from a thread, as the publisher would;
memray runs under ``python -m memray run --native`` (with and without
``--trace-python-allocators``).

    python bench/bench_native.py [--repeat 3] [--scale 1.0] [--only native,ctypes,alloc]
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

from _common import overhead_arguments, run_script

from memscope.producer.native_mode import preload_env

WORKLOADS = {
    # Native-heavy: C libraries calling malloc/free through their own PLT (zlib's deflate
    # state on every compress2 call, numpy's sort buffers), with the Python around it.
    "native": """
        import ctypes, ctypes.util
        import numpy as np
        zlib = ctypes.CDLL(ctypes.util.find_library("z"))
        SRC = b"memscope native mode " * 50
        DST = ctypes.create_string_buffer(len(SRC) + 1024)

        def workload(scale):
            total = 0
            for i in range(int(40_000 * scale)):
                size = ctypes.c_ulong(len(DST))
                total += zlib.compress2(DST, ctypes.byref(size), SRC, len(SRC), 1)
                if i % 20 == 0:
                    arr = np.sort(np.random.rand(5_000), kind="stable")
                    total += int(arr[0] >= 0)
            return total
    """,
    # ctypes calling libc's malloc/free directly: memscope sees these calls (its dlsym hook
    # hands ctypes the shim's functions); a GOT-patching tracer does not see them at all.
    "ctypes": """
        import ctypes, ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]

        def workload(scale):
            for i in range(int(2_000 * scale)):
                blocks = [libc.malloc(64 + j) for j in range(50)]
                for b in blocks:
                    libc.free(b)
            return 0
    """,
    # Allocation-heavy pure Python: what native mode adds when C code allocates little.
    "alloc": """
        def workload(scale):
            keep = []
            for i in range(int(300_000 * scale)):
                item = {"id": i, "tags": [i, i + 1], "pair": (i, str(i))}
                keep.append(item)
                if len(keep) > 2_000:
                    keep = []
            return len(keep)
    """,
}

#: name -> (how the child runs, setup code)
SETUPS: dict[str, tuple[str, str]] = {
    "plain": ("python", ""),
    "plain + shim (idle)": ("preload", ""),
    "memscope (python only)": ("python", "MODE = dict(native=False)"),
    "memscope --native": ("preload", "MODE = dict(native=True)"),
    "memray --native": ("memray", ""),
    "memray --native --trace-python-allocators": ("memray-python", ""),
}

CHILD = """
import sys, threading, time
{workload}
{setup}
stop_drain = threading.Event()
if "MODE" in globals():
    from memscope.producer import capture
    capture.start("full", **MODE)
    def _drainer():
        capture.ignore_current_thread()
        while not stop_drain.wait(0.1):
            capture.drain()
    drainer = threading.Thread(target=_drainer, daemon=True)
    drainer.start()
workload(0.05)  # warm up caches, imports and specialization
t0 = time.process_time()
workload({scale})
elapsed = time.process_time() - t0
stop_drain.set()
print("ELAPSED", elapsed)
"""


def run_child(workload: str, setup_name: str, scale: float) -> float:
    how, setup = SETUPS[setup_name]
    code = CHILD.format(workload=textwrap.dedent(WORKLOADS[workload]), setup=setup, scale=scale)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("LD_PRELOAD", None)
    if how == "preload":
        env = preload_env(env)

    def command(script: Path, tmp: Path) -> list[str]:
        if how.startswith("memray"):
            extra = ["--trace-python-allocators"] if how == "memray-python" else []
            return [
                sys.executable,
                "-m",
                "memray",
                "run",
                "--native",
                *extra,
                "-q",
                "-o",
                str(tmp / "out.bin"),
                str(script),
            ]
        return [sys.executable, str(script)]

    (elapsed,) = run_script(code, command, env, 900, f"{setup_name} on {workload}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    args = overhead_arguments(__doc__.splitlines()[0], WORKLOADS, SETUPS).parse_args(argv)
    workloads = [w for w in args.only.split(",") if w]
    setups = [s for s in args.setups.split(",") if s]
    results: dict[str, dict[str, float]] = {w: {} for w in workloads}
    # Round-robin over configurations, so that a burst of load on a shared machine hits all
    # of them alike; the best time of each is kept.
    for _ in range(args.repeat):
        for workload in workloads:
            for setup in setups:
                t = run_child(workload, setup, args.scale)
                results[workload][setup] = min(t, results[workload].get(setup, t))
    width = max(len(s) for s in setups) + 2
    header = f"{'configuration':<{width}}" + "".join(f"{w:>22}" for w in workloads)
    print(header)
    print("-" * len(header))
    for setup in setups:
        cells = []
        for workload in workloads:
            t = results[workload][setup]
            base = results[workload].get("plain")
            ratio = f"{t / base:5.2f}x" if base else "   n/a"
            cells.append(f"{t * 1000:10.1f} ms {ratio:>8}")
        print(f"{setup:<{width}}" + "".join(f"{c:>22}" for c in cells))
    if "memscope --native" in setups and "memray --native" in setups:
        for workload in workloads:
            ours = results[workload]["memscope --native"]
            theirs = results[workload]["memray --native"]
            print(f"{workload}: memscope --native / memray --native = {ours / theirs:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
