"""How long ``Tracker.get_stats()`` takes as a traced program runs: exact totals, on demand.

    python bench/bench_stats.py [--allocations 10000000] [--every 1000000] [--repeats 9]

A program under ``memscope.init()`` (embedded broker) allocates ``--allocations`` times (a
small list per iteration, one in 50 kept) and calls ``get_stats()`` every ``--every``
allocations, timing each call. Then, still allocating, it calls it ``--repeats`` more times
(every ``--gap`` allocations): the median of those is the figure after 10 M allocations.
Last it pauses 1.5 s and calls it once more. After the first call the broker folds every
batch it writes into running totals (``memscope.broker.totals``), so a call waits for the
program's last events to be shipped, land and be folded, nothing more. For scale,
tracemalloc's ``get_traced_memory()`` (a running counter in the process, no totals per
process or peak attribution) is timed on the same workload in the same run; memray has no
in-process query.

Goal (issue 12): <= 20 ms after 10 M allocations.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

GOAL_MS = 20.0

_PROGRAM = textwrap.dedent("""
    import json, sys, time
    mode, total, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    repeats, gap = int(sys.argv[4]), int(sys.argv[5])
    if mode == "memscope":
        import memscope
        memscope.init()
        stats = memscope.get_global_tracker().get_stats
    else:
        import tracemalloc
        tracemalloc.start()
        stats = tracemalloc.get_traced_memory
    keep, calls = [], []
    for i in range(1, total + 1):
        x = [i, i]
        if i % 50 == 0:
            keep.append(x)
        if i % every == 0:
            t = time.perf_counter()
            s = stats()
            calls.append((i, (time.perf_counter() - t) * 1000))
    tail = []  # still allocating: repeated calls after the last row
    for _ in range(repeats):
        for _ in range(gap):
            i += 1
            x = [i, i]
            if i % 50 == 0:
                keep.append(x)
        t = time.perf_counter()
        s = stats()
        tail.append((time.perf_counter() - t) * 1000)
    time.sleep(1.5)  # the program pauses: the broker's background fold catches up
    t = time.perf_counter()
    s = stats()
    paused = (time.perf_counter() - t) * 1000
    print("RESULT " + json.dumps({"calls": calls, "tail": tail, "paused": paused,
                                  "last": str(s)[:300]}))
""")


def _run(mode: str, total: int, every: int, repeats: int, gap: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="memscope-stats-") as tmp:
        script = os.path.join(tmp, "work.py")
        with open(script, "w") as fh:
            fh.write(_PROGRAM)
        env = {**os.environ, "MEMSCOPE_LOG_DIR": os.path.join(tmp, "events")}
        out = subprocess.run(
            [sys.executable, script, mode, str(total), str(every), str(repeats), str(gap)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            timeout=1800,
        )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{mode} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocations", type=int, default=10_000_000)
    parser.add_argument("--every", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--gap", type=int, default=50_000)
    args = parser.parse_args()
    rows = {
        mode: _run(mode, args.allocations, args.every, args.repeats, args.gap)
        for mode in ("tracemalloc", "memscope")
    }
    print(
        f"{'after allocations':>18} {'memscope get_stats ms':>22} "
        f"{'tracemalloc get_traced_memory ms':>33}"
    )
    for (n, ms), (_, tm) in zip(
        rows["memscope"]["calls"], rows["tracemalloc"]["calls"], strict=True
    ):
        print(f"{n:>18,} {ms:>22.1f} {tm:>33.3f}")
    tail = rows["memscope"]["tail"]
    last = statistics.median(tail)
    paused = rows["memscope"]["paused"]
    print(
        f"\nafter {args.allocations:,} allocations, while allocating: median {last:.1f} ms "
        f"of {len(tail)} calls (min {min(tail):.1f}, max {max(tail):.1f}; goal "
        f"{GOAL_MS:.0f} ms, ratio {last / GOAL_MS:.2f}; tracemalloc median "
        f"{statistics.median(rows['tracemalloc']['tail']):.3f} ms)"
    )
    print(
        f"after {args.allocations:,} allocations and a 1.5 s pause: {paused:.1f} ms "
        f"(goal {GOAL_MS:.0f} ms, ratio {paused / GOAL_MS:.2f}; tracemalloc "
        f"{rows['tracemalloc']['paused']:.3f} ms)"
    )
    print(f"last memscope answer: {rows['memscope']['last']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
