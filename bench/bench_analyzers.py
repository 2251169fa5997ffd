"""Analyze a synthetic 50-million-event log into all six files; print wall time and peak RSS.

    python bench/bench_analyzers.py [--events 50000000] [--jobs 2] [--processes 4] [--keep DIR]
                                    [--log-memory chunks|columns]

The log is written with the broker's LogWriter into a temporary directory, in a child
process so generating it does not count toward the analysis's memory. Its memory events are
stored the way the broker stores a tracer's: rec1 chunks, decoded on read (``--log-memory
columns`` writes format-1 Arrow columns instead). The workload looks
like a Python heap: address slots reused over and over (pymalloc pools), small sizes with a
long tail, 2,000 allocation stacks, most blocks short-lived, some growing sites never freed.
Then ``memscope analyze`` runs (``run_all``) as its own child process, from no checkpoint:
it folds every event once into the analysis state and writes the six files; its wall time
and the peak RSS of it and of any worker process are measured from the outside. A second
``analyze`` of the same log then starts from the checkpoint the first one wrote.

Goal (issue 12): <= 8 s wall and <= 1 GiB peak RSS on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 8.0
GOAL_RSS = 1024**3
EVENTS_PER_GROUP = 1_000_000
CYCLES_PER_SLOT = 25
STACKS = 2_000


def _group(rng, g: int, n_events: int, pid: int, t_span: int):
    import numpy as np
    import pyarrow as pa

    from memscope.protocol.log_schema import MEMORY

    slots = max(1, n_events // (2 * CYCLES_PER_SLOT))
    cycles = CYCLES_PER_SLOT
    # per slot: alternating alloc/free times (gap = lifetime, then idle)
    lifetimes = rng.exponential(20_000, (slots, cycles)).astype(np.int64) + 1
    idle = rng.exponential(t_span / cycles, (slots, cycles)).astype(np.int64) + 1
    starts = np.cumsum(lifetimes + idle, axis=1) - lifetimes
    ends = starts + lifetimes
    sizes = np.minimum(rng.lognormal(4.0, 1.2, (slots, cycles)), 1 << 22).astype(np.uint64) + 1
    stack = rng.zipf(1.3, (slots, cycles)) % STACKS + 1
    # 3 % of slots keep their last block (alive at exit); stacks 1..20 leak steadily
    keep = rng.random(slots) < 0.03
    has_free = np.ones((slots, cycles), dtype=bool)
    has_free[keep, -1] = False
    leak_slots = rng.random(slots) < 0.01
    stack[leak_slots, :] = rng.integers(1, 21, (int(leak_slots.sum()), 1))
    has_free[leak_slots, :] = False
    # a leaking slot never frees, so it may not be reused: give each cycle its own address
    addr_base = np.uint64(0x7F00_0000_0000) + np.uint64(g) * np.uint64(1 << 36)
    slot_addr = addr_base + np.arange(slots, dtype=np.uint64)[:, None] * np.uint64(1 << 12)
    addr = np.broadcast_to(slot_addr, (slots, cycles)).copy()
    addr[leak_slots, :] += np.arange(cycles, dtype=np.uint64) * np.uint64(16)
    a_ts, f_ts = starts.ravel(), ends.ravel()[has_free.ravel()]
    n_a, n_f = a_ts.size, f_ts.size
    ts = np.concatenate([a_ts, f_ts])
    order = np.argsort(ts, kind="stable")
    n = n_a + n_f
    kind = np.concatenate([np.zeros(n_a, np.uint8), np.full(n_f, 3, np.uint8)])
    columns = {
        "pid": np.full(n, pid, np.uint32),
        "tid": (
            np.concatenate([stack.ravel() % 4, stack.ravel()[has_free.ravel()] % 4]) + 1
        ).astype(np.uint64)[order],
        "seq": np.arange(g * EVENTS_PER_GROUP * 2, g * EVENTS_PER_GROUP * 2 + n, dtype=np.uint64),
        "ts_ns": ts[order],
        "kind": kind[order],
        "domain": np.full(n, 2, np.uint8),
        "address": np.concatenate([addr.ravel(), addr.ravel()[has_free.ravel()]])[order],
        "old_address": np.zeros(n, np.uint64),
        "size": np.concatenate([sizes.ravel(), np.zeros(n_f, np.uint64)])[order],
        "stack_id": np.concatenate([stack.ravel(), stack.ravel()[has_free.ravel()]]).astype(
            np.uint32
        )[order],
    }
    return pa.Table.from_pydict(columns, schema=MEMORY)


def _chunk_rows(table, batch_seq: int, batch_events: int = 65536):
    """``table``'s events as the broker stores a tracer's: ``memory_chunks`` record batches.

    Each run of ``batch_events`` events is one envelope (batch seq); within it, one rec1
    chunk per thread, as the tracer ships them.
    """
    import numpy as np
    import pyarrow as pa

    from memscope.protocol.log_schema import MEMORY_CHUNKS
    from memscope.protocol.records import _DTYPES, encode_rec1

    columns = {name: table.column(name).to_numpy() for name in table.column_names}
    pid = int(columns["pid"][0])
    for start in range(0, table.num_rows, batch_events):
        tids = columns["tid"][start : start + batch_events]
        order = np.argsort(tids, kind="stable") + start
        rows: dict[str, list] = {name: [] for name in MEMORY_CHUNKS.names}
        first = 0
        for tid in np.unique(tids):
            idx = order[columns["tid"][order] == tid]
            chunk = encode_rec1(int(tid), {name: columns[name][idx] for name in _DTYPES})
            for name, value in (
                ("pid", pid),
                ("tid", int(tid)),
                ("batch_seq", batch_seq),
                ("first_index", first),
                ("n", len(idx)),
                ("encoding", "rec1"),
                ("data", chunk["data"]),
            ):
                rows[name].append(value)
            first += len(idx)
        batch_seq += 1
        yield pa.RecordBatch.from_pydict(rows, schema=MEMORY_CHUNKS)


def build_log(path: Path, events: int, processes: int, memory: str = "chunks") -> dict:
    """Write the synthetic log (memory events as rec1 chunks or as columns); return counts."""
    import numpy as np

    from memscope.analyzers.log_builder import LogBuilder
    from memscope.eventlog.log import LogWriter

    rng = np.random.default_rng(2024)
    writer = LogWriter(path)
    b = LogBuilder()
    t_span = 60_000_000_000
    for p in range(processes):
        pid = 1000 + p
        b.process(pid, 0, argv=["bench.py", str(p)], exit_ts_ns=t_span * 2)
        for s in range(1, STACKS + 1):
            b.stack(pid, [("<module>", "bench.py", 1), (f"f{s % 97}", f"mod{s % 13}.py", s)])
        b.producer_stats(
            pid,
            t_span,
            events=events // processes,
            bytes=events // processes * 6,
            drops=0,
            buffer_high_water=4096,
            batches=events // 65536,
            spooled=0,
        )
    for name, table in b.tables().items():
        if table.num_rows:
            writer.append(name, table)
    written, g = 0, 0
    while written < events:
        n = min(EVENTS_PER_GROUP, events - written)
        table = _group(rng, g, n, 1000 + g % processes, t_span)
        if memory == "chunks":
            for batch in _chunk_rows(table, batch_seq=g * (EVENTS_PER_GROUP * 2 // 65536 + 1)):
                writer.append("memory_chunks", batch)
        else:
            for batch in table.to_batches(max_chunksize=65536):
                writer.append("memory", batch)
        written += table.num_rows
        g += 1
    writer.close()
    size = sum(f.stat().st_size for f in path.rglob("*.arrow"))
    return {"events": written, "bytes_on_disk": size}


_ANALYZE = """
import json, resource, sys, time
from memscope.analyzers import run_all
t = time.perf_counter()
files = run_all(sys.argv[1], sys.argv[2], jobs=int(sys.argv[3]))
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
print(json.dumps({"wall_s": time.perf_counter() - t, "files": [str(f) for f in files],
                  "cpu_s": cpu,
                  "self_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "children_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


_WORKLOAD = """
import sys
keep = []
for i in range(int(sys.argv[1])):
    x = [i] * (i % 7 + 1)
    if i % 50 == 0:
        keep.append(x)
    s = str(i) * 3
"""


def _timed(cmd: list[str], **kw) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, **kw)
    return time.perf_counter() - t


def compare(iterations: int) -> list[tuple[str, float, int]]:
    """One workload traced by tracemalloc, memray and memscope; time each tool's analysis.

    Returns (tool, analysis seconds, events or allocations analyzed) rows.
    """
    out = []
    with tempfile.TemporaryDirectory(prefix="memscope-cmp-") as tmp:
        work = Path(tmp) / "work.py"
        work.write_text(_WORKLOAD)
        tm = (
            f"import tracemalloc, time, runpy, sys; sys.argv=['w', '{iterations}']; "
            f"tracemalloc.start(1); runpy.run_path({str(work)!r}); "
            "s = tracemalloc.take_snapshot(); "
            "t = time.perf_counter(); st = s.statistics('traceback'); "
            "print(time.perf_counter() - t, len(s.traces))"
        )
        res = subprocess.run(
            [sys.executable, "-c", tm], check=True, capture_output=True, text=True
        ).stdout.split()
        out.append(("tracemalloc statistics (live traces)", float(res[0]), int(res[1])))
        capture = Path(tmp) / "w.bin"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "memray",
                "run",
                "-q",
                "--trace-python-allocators",
                "-o",
                str(capture),
                str(work),
                str(iterations),
            ],
            check=True,
            capture_output=True,
        )
        seconds = _timed(
            [
                sys.executable,
                "-m",
                "memray",
                "stats",
                "--json",
                "-f",
                "-o",
                str(Path(tmp) / "stats.json"),
                str(capture),
            ]
        )
        total = json.loads((Path(tmp) / "stats.json").read_text()).get("total_num_allocations", 0)
        out.append(("memray stats --json", seconds, int(total)))
        run_dir = Path(tmp) / "run"
        env = {**os.environ, "MEMSCOPE_DISABLE": "0"}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "memscope",
                "run",
                "--out",
                str(run_dir),
                str(work),
                str(iterations),
            ],
            capture_output=True,
            env=env,
            check=True,
        )
        from memscope.analyzers.views import connect

        events = connect(run_dir).execute("SELECT count(*) FROM raw_memory").fetchall()[0][0]
        seconds = _timed(
            [
                sys.executable,
                "-m",
                "memscope",
                "analyze",
                "-q",
                "--jobs",
                "1",
                "--out",
                str(Path(tmp) / "a"),
                str(run_dir),
            ]
        )
        out.append(("memscope analyze (six files)", seconds, int(events)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="analyzer worker processes (default: memscope analyze's)",
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument(
        "--log-memory",
        choices=("chunks", "columns"),
        default="chunks",
        help="memory events stored as the broker stores a tracer's (rec1 "
        "chunks, the default) or as Arrow columns (logs of format 1)",
    )
    parser.add_argument("--keep", type=Path, help="build (or reuse) the log here")
    parser.add_argument(
        "--compare",
        type=int,
        default=200_000,
        metavar="N",
        help="also time tracemalloc, memray and memscope analyzing one "
        "workload of N loop iterations (0: skip)",
    )
    args = parser.parse_args()
    tmp = None
    if args.keep:
        root = args.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="memscope-bench-")
        root = Path(tmp.name)
    log = root / "events"
    if not (log / "manifest.json").exists():
        t = time.perf_counter()
        here = str(Path(__file__).parent)
        code = (
            f"import json, sys; from pathlib import Path; sys.path.insert(0, {here!r}); "
            "import bench_analyzers as b; "
            "print(json.dumps(b.build_log(Path(sys.argv[1]), int(sys.argv[2]), "
            "int(sys.argv[3]), sys.argv[4])))"
        )
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                str(log),
                str(args.events),
                str(args.processes),
                args.log_memory,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        built = json.loads(out.stdout)
        print(
            f"built {built['events']:,} events in {time.perf_counter() - t:.1f} s "
            f"({built['bytes_on_disk'] / built['events']:.2f} bytes/event on disk, "
            f"memory events stored as {args.log_memory})"
        )
    from memscope.commands.analyze import default_jobs

    jobs = args.jobs or default_jobs()
    print(f"analyzing with --jobs {jobs}")
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _ANALYZE, str(log), str(root / "out"), str(jobs)],
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "MEMSCOPE_ANALYSIS_MEMORY_MB": os.environ.get("MEMSCOPE_ANALYSIS_MEMORY_MB", "1000"),
        },
    )
    outer = time.perf_counter() - started
    result = json.loads(out.stdout.strip().splitlines()[-1])
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _ANALYZE, str(log), str(root / "out2"), str(jobs)],
        check=True,
        capture_output=True,
        text=True,
    )
    again = time.perf_counter() - started
    tree_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    rss = max(result["self_rss"], result["children_rss"], tree_rss)
    load = os.getloadavg()[0]
    rows = [
        ("analyze wall time (s)", f"{outer:.1f}", f"{GOAL_S:.0f}", f"{outer / GOAL_S:.2f}"),
        ("analyze CPU time, all processes (s)", f"{result['cpu_s']:.1f}", "", ""),
        ("again, from the checkpoint (s)", f"{again:.2f}", "", ""),
        (
            "CPU time / (2 cores x goal)",
            f"{result['cpu_s'] / 2:.1f}",
            f"{GOAL_S:.0f}",
            f"{result['cpu_s'] / 2 / GOAL_S:.2f}",
        ),
        (
            "peak RSS, largest process (MiB)",
            f"{rss / 2**20:.0f}",
            f"{GOAL_RSS / 2**20:.0f}",
            f"{rss / GOAL_RSS:.2f}",
        ),
        (
            "peak RSS, analyzer + worker (MiB)",
            f"{(result['self_rss'] + result['children_rss']) / 2**20:.0f}",
            f"{GOAL_RSS / 2**20:.0f}",
            f"{(result['self_rss'] + result['children_rss']) / GOAL_RSS:.2f}",
        ),
    ]
    print(f"{'measure':36} {'value':>10} {'goal':>8} {'ratio':>7}")
    for name, value, goal, ratio in rows:
        print(f"{name:36} {value:>10} {goal:>8} {ratio:>7}")
    print(f"files: {', '.join(Path(f).name for f in result['files'])}")
    print(
        f"(1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores; "
        f"wall time on a shared machine is CPU time stretched by the other processes)"
    )
    if args.compare:
        rows_cmp = compare(args.compare)
        base = rows_cmp[-1][1] / max(1, rows_cmp[-1][2])
        print(f"\nsame workload ({args.compare:,} iterations), analysis time per event/trace:")
        print(f"{'tool':38} {'seconds':>8} {'items':>10} {'us/item':>8} {'vs memscope':>11}")
        for tool, seconds, items in rows_cmp:
            per = seconds / max(1, items)
            print(
                f"{tool:38} {seconds:8.2f} {items:>10,} {per * 1e6:8.2f} "
                f"{per / base if base else 0:11.2f}"
            )
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
