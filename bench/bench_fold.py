"""Fold a synthetic heap's event stream with the C ``Fold``; print events/s and state memory.

    python bench/bench_fold.py [--events 20000000] [--piece 1000000] [--pids 2]
                               [--compare 200000] [--repeat 2]

The stream looks like a Python heap under pymalloc: nested "frames" allocate a few small
blocks and free them in reverse order, in arenas whose addresses are reused LIFO (the same
few addresses come back frame after frame), a zipf over 2,000 allocation stacks, 4 threads,
1 % of frames realloc their last block (half in place, half moving), 0.05 % of blocks leak
(never freed, fresh addresses) and a long-lived set of blocks allocated at the start stays
alive throughout. ``feed`` gets it in ``--piece``-event pieces, as a reader hands over
windows of the log. The same stream goes through a second time (timestamps shifted, each
address's block freed and allocated again) so that the state's growth per event shows.

Printed: events/s of ``Fold.feed`` (best of ``--repeat`` fresh folds), by wall time and by
the thread's CPU time (the two differ when the machine is shared); the state's size (bytes
malloc'ed) and peak RSS growth (counted from after the stream's arrays are built), after
the first pass and over the second (should be ~0: the state is bounded by addresses,
sites and sizes, not events); and ``PyFold`` on the first ``--compare`` events for the
C/Python ratio.

Goal: >= 20 M events/s on one core.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

GOAL_EVENTS_S = 20e6
STACKS = 2_000
THREADS = 4
ARENAS = 4_096
LONG_LIVED = 100_000


def build_stream(events: int, pids: int, seed: int = 7) -> dict:
    """The synthetic stream as feed's ten columns (numpy arrays, processing order)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # long-lived blocks first (alive to the end), then frames of nested alloc/free pairs
    frames = max(1, (events - LONG_LIVED) // 6)
    depth = rng.integers(1, 6, frames)  # 1..5 blocks, mean 3: 6 events a frame
    arena = (rng.zipf(1.3, frames) - 1) % ARENAS  # a few hot arenas, a long tail
    n_alloc = int(depth.sum())
    frame_of = np.repeat(np.arange(frames), depth)
    first = np.cumsum(depth) - depth
    level = np.arange(n_alloc) - np.repeat(first, depth)  # 0..depth-1 within the frame
    # arena a's level-k block always sits at the same address: LIFO reuse
    addr = (
        np.uint64(0x7F00_0000_0000)
        + arena[frame_of].astype(np.uint64) * np.uint64(1024)
        + level.astype(np.uint64) * np.uint64(64)
    )
    size = np.minimum(rng.lognormal(3.5, 0.8, n_alloc), 512).astype(np.uint64) + 1
    stack = (rng.zipf(1.4, n_alloc) % STACKS + 1).astype(np.uint32)
    leak = rng.random(n_alloc) < 0.0005
    addr[leak] = np.uint64(0x5500_0000_0000) + np.arange(int(leak.sum()), dtype=np.uint64) * 16
    # event order within a frame: allocs by level, then frees by reverse level
    rank_a = 2 * first[frame_of] + level
    rank_f = 2 * first[frame_of] + 2 * depth[frame_of] - 1 - level
    keep = ~leak
    rank = np.concatenate([rank_a, rank_f[keep]])
    order = np.argsort(rank, kind="stable")
    n_f = int(keep.sum())
    kind = np.concatenate([np.zeros(n_alloc, np.uint8), np.full(n_f, 3, np.uint8)])[order]
    address = np.concatenate([addr, addr[keep]])[order]
    sizes = np.concatenate([size, np.zeros(n_f, np.uint64)])[order]
    stacks = np.concatenate([stack, stack[keep]])[order]
    frame = np.concatenate([frame_of, frame_of[keep]])[order]
    # 1 % of frames: a realloc of the deepest block (in place or to a new address) just
    # before its free, which then frees the realloc's address
    top_free = np.r_[False, (kind[1:] == 3) & (kind[:-1] == 0)]
    moved = np.nonzero(top_free & (rng.random(len(kind)) < 0.01))[0]
    in_place = rng.random(len(moved)) < 0.5
    new_addr = np.where(in_place, address[moved], address[moved] + np.uint64(512))
    old = np.insert(np.zeros(len(kind), np.uint64), moved, address[moved])
    address[moved] = new_addr
    address = np.insert(address, moved, new_addr)
    kind = np.insert(kind, moved, np.uint8(2))
    sizes = np.insert(sizes, moved, np.uint64(700))
    stacks = np.insert(stacks, moved, stacks[moved])
    frame = np.insert(frame, moved, frame[moved])
    long_addr = np.uint64(0x6600_0000_0000) + np.arange(LONG_LIVED, dtype=np.uint64) * 32
    cols = {
        "kind": np.concatenate([np.zeros(LONG_LIVED, np.uint8), kind]),
        "address": np.concatenate([long_addr, address]),
        "old_address": np.concatenate([np.zeros(LONG_LIVED, np.uint64), old]),
        "size": np.concatenate([np.full(LONG_LIVED, 48, np.uint64), sizes]),
        "stack_id": np.concatenate([np.full(LONG_LIVED, STACKS + 1, np.uint32), stacks]),
    }
    total = len(cols["kind"])
    frame_all = np.concatenate([np.zeros(LONG_LIVED, np.int64), frame])
    cols["tid"] = (frame_all % THREADS + 1).astype(np.uint64)
    cols["pid"] = (frame_all % pids + 1000).astype(np.uint32)
    cols["seq"] = np.arange(total, dtype=np.uint64)
    cols["ts_ns"] = np.arange(total, dtype=np.int64) * 50 + 1_000_000
    cols["domain"] = np.full(total, 2, np.uint8)
    order = [
        "pid",
        "tid",
        "seq",
        "ts_ns",
        "kind",
        "domain",
        "address",
        "old_address",
        "size",
        "stack_id",
    ]
    return {name: np.ascontiguousarray(cols[name]) for name in order}


def _status(field: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM) in bytes; the peak RSS elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> int:
    """Give freed heap back to the system and restart the peak RSS count; RSS now."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)
    except (OSError, AttributeError):
        pass
    return _status("VmRSS")


def _heap() -> int:
    """Bytes malloc has handed out and not had back (glibc's mallinfo2), else RSS: the
    fold's state is all malloc'ed, so its growth is the state's size."""
    try:
        import ctypes

        class _Info(ctypes.Structure):
            _fields_ = [
                (name, ctypes.c_size_t)
                for name in (
                    "arena",
                    "ordblks",
                    "smblks",
                    "hblks",
                    "hblkhd",
                    "usmblks",
                    "fsmblks",
                    "uordblks",
                    "fordblks",
                    "keepcost",
                )
            ]

        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _Info
        info = libc.mallinfo2()
        return int(info.uordblks + info.hblkhd)
    except (OSError, AttributeError):
        return _status("VmRSS")


def _feed(fold, cols: dict, piece: int, lo: int = 0, hi: int | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of feeding events [lo, hi) in pieces."""
    hi = len(cols["pid"]) if hi is None else hi
    t, c = time.perf_counter(), time.thread_time()
    for start in range(lo, hi, piece):
        stop = min(start + piece, hi)
        fold.feed(*(c[start:stop] for c in cols.values()))
    return time.perf_counter() - t, time.thread_time() - c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--piece", type=int, default=1_000_000)
    parser.add_argument("--pids", type=int, default=2)
    parser.add_argument("--compare", type=int, default=200_000, help="events for PyFold (0: skip)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    from memscope.analyzers._fold import Fold
    from memscope.analyzers.fold import PyFold

    t = time.perf_counter()
    cols = build_stream(args.events, args.pids)
    second = dict(cols)
    span = int(cols["ts_ns"][-1] - cols["ts_ns"][0]) + 50
    second["ts_ns"] = cols["ts_ns"] + span
    second["seq"] = cols["seq"] + len(cols["seq"])
    n = len(cols["pid"])
    print(f"stream: {n:,} events, {args.pids} pid(s), built in {time.perf_counter() - t:.1f} s")

    heap0 = _heap()
    rss0 = _reset_peak()
    best_wall = best_cpu = float("inf")
    fold = None
    for _ in range(max(1, args.repeat)):
        fold = None  # drop the previous state before measuring a fresh one
        fold = Fold()
        wall, cpu = _feed(fold, cols, args.piece)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    assert fold is not None
    rss1, heap1 = _status("VmHWM"), _heap()
    again, _ = _feed(fold, second, args.piece)
    rss2, heap2 = _status("VmHWM"), _heap()
    tables = fold.export()
    rate, cpu_rate = n / best_wall, n / best_cpu
    blocks = len(tables["blocks"]["pid"])
    live = int(tables["processes"]["live_blocks"].sum())
    print(
        f"C Fold.feed: {rate / 1e6:.1f} M events/s wall, {cpu_rate / 1e6:.1f} M events/s "
        f"of CPU ({best_wall:.2f} s for {n:,}, best of {max(1, args.repeat)}; second pass "
        f"{n / again / 1e6:.1f} M events/s wall)"
    )
    print(
        f"state: {(heap1 - heap0) / 2**20:.1f} MiB allocated after {n:,} events "
        f"({(heap1 - heap0) / max(blocks, 1):.0f} B per address entry), "
        f"{(heap2 - heap1) / 2**20:+.1f} MiB over the next {n:,} events; peak RSS "
        f"{(rss1 - rss0) / 2**20:+.0f} MiB, then {(rss2 - rss1) / 2**20:+.0f} MiB"
    )
    print(
        f"       {blocks:,} address entries, {live:,} live blocks, "
        f"{len(tables['sites']['pid']):,} sites, {len(tables['sizes']['pid']):,} sizes"
    )
    result = {
        "events": n,
        "c_events_per_s": rate,
        "c_events_per_cpu_s": cpu_rate,
        "state_bytes": heap1 - heap0,
        "state_growth_second_pass": heap2 - heap1,
        "rss_growth": rss1 - rss0,
        "rss_growth_second_pass": rss2 - rss1,
        "blocks": blocks,
    }
    if args.compare:
        m = min(args.compare, n)
        py = PyFold()
        t_py, _ = _feed(py, cols, args.piece, 0, m)
        c = Fold()
        t_c, _ = _feed(c, cols, args.piece, 0, m)
        print(
            f"PyFold.feed: {m / t_py / 1e6:.3f} M events/s on the first {m:,} events; "
            f"C/Python {t_py / t_c:.0f}x on that slice (C from an empty state), "
            f"{n / best_wall / (m / t_py):.0f}x against C's whole-stream rate"
        )
        result.update(
            py_events_per_s=m / t_py, ratio=t_py / t_c, ratio_whole=n / best_wall / (m / t_py)
        )
    rate = max(rate, cpu_rate)  # on a loaded machine the CPU figure is the one-core rate
    verdict = "meets" if rate >= GOAL_EVENTS_S else "MISSES"
    print(f"goal >= {GOAL_EVENTS_S / 1e6:.0f} M events/s: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
