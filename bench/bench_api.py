"""The cost of the API with ``MEMSCOPE_DISABLE=1``: init, track_var and scope do nothing.

Each configuration runs in a fresh child process and times only its workload (CPU time of
the process, so that other load on the machine counts less); configurations take turns and
the best of ``--repeat`` runs is kept. Rows:

* per-call cost (ns) of ``memscope.init()``, ``memscope.track_var(x)`` and
  ``with memscope.scope("s")`` while disabled, next to a call of an empty Python function;
* an allocation-heavy workload plain, with a disabled ``init`` and a ``track_var`` every 100
  iterations, and (for scale) under tracemalloc and memray in the same run.

    python bench/bench_api.py [--repeat 5] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

CALLS = 1_000_000

PER_CALL = {
    "empty function": "def f(x):\n    return x\nrun = lambda n: [f(1) for _ in range(n)]",
    "init() disabled": "import memscope\nrun = lambda n: [memscope.init() for _ in range(n)]",
    "track_var disabled": (
        "import memscope\nmemscope.init()\nx = [1]\n"
        "run = lambda n: [memscope.track_var(x) for _ in range(n)]"
    ),
    "scope disabled": (
        "import memscope\nmemscope.init()\ns = memscope.scope('s')\n"
        "def run(n):\n    for _ in range(n):\n        with s:\n            pass"
    ),
}

WORKLOAD = """
def workload(scale, track):
    keep = []
    for i in range(int(300_000 * scale)):
        item = {"id": i, "tags": [i, i + 1], "pair": (i, str(i))}
        if i % 100 == 0:
            track(item)
        keep.append(item)
        if len(keep) > 2_000:
            keep = []
    return len(keep)
"""

SETUPS = {
    "plain": "track = lambda obj: obj",
    "memscope disabled": "import memscope\nmemscope.init()\ntrack = memscope.track_var",
    "tracemalloc": "import tracemalloc\ntracemalloc.start()\ntrack = lambda obj: obj",
    "memray": (
        "import memray, os, tempfile\n"
        "_out = os.path.join(tempfile.mkdtemp(), 'bench.bin')\n"
        "_tracker = memray.Tracker(_out, trace_python_allocators=True)\n"
        "_tracker.__enter__()\n"
        "track = lambda obj: obj"
    ),
}

CHILD = """
import json, time
{setup}
{body}
t = time.process_time()
{call}
print(json.dumps(time.process_time() - t))
"""


def _child(setup: str, body: str, call: str) -> float:
    code = CHILD.format(setup=setup, body=textwrap.dedent(body), call=call)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MEMSCOPE_DISABLE="1")
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr}")
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    calls = int(CALLS * args.scale)

    print(f"per call, MEMSCOPE_DISABLE=1, {calls} calls, best of {args.repeat}")
    print(f"{'call':<22}{'ns/call':>10}{'vs empty fn':>14}")
    base = None
    per_call: dict[str, list[float]] = {name: [] for name in PER_CALL}
    for _ in range(args.repeat):
        for name, body in PER_CALL.items():
            per_call[name].append(_child("", body, f"run({calls})"))
    for name in PER_CALL:
        best = min(per_call[name])
        ns = best / calls * 1e9
        base = base or ns
        print(f"{name:<22}{ns:>10.1f}{ns / base:>13.2f}x")

    print(f"\nallocation-heavy workload, track every 100 items, best of {args.repeat}")
    print(f"{'configuration':<22}{'CPU s':>10}{'vs plain':>14}")
    # Round-robin over the configurations so that load from other processes hits all alike.
    times: dict[str, list[float]] = {name: [] for name in SETUPS}
    failed: dict[str, str] = {}
    for _ in range(args.repeat):
        for name, setup in SETUPS.items():
            if name in failed:
                continue
            try:
                times[name].append(_child(setup, WORKLOAD, f"workload({args.scale}, track)"))
            except SystemExit as exc:
                failed[name] = str(exc).splitlines()[-1]
    plain = min(times["plain"])
    for name in SETUPS:
        if name in failed:
            print(f"{name:<22}{'failed':>10}  {failed[name]}")
            continue
        best = min(times[name])
        print(f"{name:<22}{best:>10.3f}{best / plain:>13.2f}x")


if __name__ == "__main__":
    main()
