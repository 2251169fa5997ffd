"""Modes: exact peaks (vs tracemalloc), aggregated folding and promotion, byte sampling."""

import subprocess
import sys
import textwrap

import numpy as np
from tracer_util import capture_run, decode_all, drain, resolve_stack

from memscope.producer import capture
from memscope.protocol.wire import KIND_ALLOC, KIND_CALLOC, KIND_FREE, KIND_REALLOC

WORKLOAD = """
def workload():
    held = [bytearray(100_000 + i) for i in range(300)]   # ~30 MB at the peak
    rows = [{"k": i, "v": [i] * 5} for i in range(50_000)]
    del held
    del rows
    return 0
"""


def _run_python(code):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _replay_peak(ev):
    """Peak of live bytes replayed from events (allocs, reallocs and frees by address)."""
    live, current, peak = {}, 0, 0
    for kind, addr, old, size in zip(
        ev["kind"].tolist(),
        ev["address"].tolist(),
        ev["old_address"].tolist(),
        ev["size"].tolist(),
        strict=True,
    ):
        if kind == KIND_FREE:
            current -= live.pop(addr, 0)
            continue
        if kind == KIND_REALLOC:
            current -= live.pop(old, 0)
        current += size - live.get(addr, 0)
        live[addr] = size
        peak = max(peak, current)
    return peak


def test_peaks_match_tracemalloc_within_one_percent():
    out = _run_python(
        WORKLOAD
        + """
import tracemalloc, json
import numpy as np
from memscope.producer import capture
from memscope.protocol import records
capture.start("aggregated", numpy=False, ffi=False)
workload()
capture.stop()
_, rare = capture.drain()
agg_peak = rare["producer_stats"]["peak_bytes"][-1]
capture.start("full", numpy=False, ffi=False)
workload()
capture.stop()
chunks, _ = capture.drain()
print(json.dumps({"agg_peak": agg_peak,
                  "chunks": [{**c, "data": c["data"].hex()} for c in chunks]}))
tracemalloc.start(1)
workload()
print(tracemalloc.get_traced_memory()[1])
"""
    )
    import json

    from memscope.protocol import records

    first, second = out.strip().splitlines()
    result = json.loads(first)
    tm_peak = int(second)
    chunks = [{**c, "data": bytes.fromhex(c["data"])} for c in result["chunks"]]
    parts = [records.decode_chunk(c) for c in chunks]
    ev = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    full_peak = _replay_peak(ev)
    assert abs(full_peak - tm_peak) <= 0.01 * tm_peak, (full_peak, tm_peak)
    assert abs(result["agg_peak"] - tm_peak) <= 0.01 * tm_peak, (result["agg_peak"], tm_peak)


def test_aggregated_folds_short_lived_pairs():
    def churn():
        for _ in range(2_000):
            blob = bytearray(777_001)
            del blob

    ev, rare, _ = capture_run(churn, mode="aggregated")
    assert (ev["size"] == 777_002).sum() == 0  # no individual events for folded pairs
    agg = rare["aggregates"]
    line = churn.__code__.co_firstlineno + 2  # the `blob = bytearray(...)` line
    rows = [
        i for i, sid in enumerate(agg["stack_id"]) if sid and resolve_stack(rare, sid)[0][2] == line
    ]
    # each iteration folds two blocks at that line: the bytearray object and its buffer
    assert sum(agg["alloc_count"][i] for i in rows) == 4_000
    folded = sum(agg["alloc_bytes"][i] for i in rows)
    assert 2_000 * 777_002 < folded <= 2_000 * (777_002 + 64)
    stats = rare["producer_stats"]
    assert stats["peak_bytes"][-1] >= 777_002
    assert stats["current_bytes"][-1] is not None


def _churn_small(n, barrier, tids):
    barrier.wait()  # both threads alive at once
    for _ in range(n):
        blob = bytearray(333)  # two OBJ-domain blocks: the object and its buffer
        del blob
    barrier.wait()
    tids[capture.thread_id()] = n


def test_aggregated_folds_per_thread_when_threads_share_a_stack():
    """Two threads fold at the same stack: each keeps its own count, across drains."""
    import threading

    counts = {}
    line = _churn_small.__code__.co_firstlineno + 3
    drain()
    capture.start("aggregated", numpy=False, ffi=False)
    try:
        rows = []
        for round_ in range(2):  # the second round reuses fold slots the drain released
            barrier = threading.Barrier(2)
            tids = {}
            workers = [
                threading.Thread(target=_churn_small, args=(n, barrier, tids))
                for n in (1_000, 3_000)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            _, rare = drain()
            agg = rare["aggregates"]
            for i, sid in enumerate(agg["stack_id"]):
                if sid and resolve_stack(rare, sid)[0][2] == line and agg["tid"][i] in tids:
                    key = (round_, tids[agg["tid"][i]])
                    counts[key] = counts.get(key, 0) + agg["alloc_count"][i]
                    rows.append(agg["alloc_bytes"][i] / agg["alloc_count"][i])
    finally:
        capture.stop()
    assert counts == {(r, n): 2 * n for r in range(2) for n in (1_000, 3_000)}, counts
    # the object and its 334-byte buffer: sys.getsizeof counts both (on 3.13 the buffer
    # comes from PyMem_Malloc: another domain, so a row of its own)
    both = sys.getsizeof(bytearray(333))
    expected = (
        {both / 2}
        if sys.version_info < (3, 13)
        else {float(bytearray.__basicsize__), float(both - bytearray.__basicsize__)}
    )
    assert set(rows) == expected, rows


def test_aggregated_promotes_survivors_and_records_their_free():
    drain()
    capture.start("aggregated")
    try:
        survivor = bytearray(888_001)
        first, _ = drain()  # sets the cutoff after the survivor's allocation
        second, _ = drain()  # the survivor has lived a whole interval: promoted
        del survivor
        third, rare = drain()
    finally:
        capture.stop()
    ev1, ev2, ev3 = decode_all(first), decode_all(second), decode_all(third)
    assert (ev1["size"] == 888_002).sum() == 0
    promoted = np.flatnonzero(ev2["size"] == 888_002)
    assert len(promoted) == 1 and ev2["kind"][promoted[0]] == KIND_ALLOC
    assert ev2["stack_id"][promoted[0]] != 0
    addr = ev2["address"][promoted[0]]
    assert ((ev3["kind"] == KIND_FREE) & (ev3["address"] == addr)).sum() == 1
    assert rare["producer_stats"]["current_bytes"][-1] < rare["producer_stats"]["peak_bytes"][-1]


def test_sampled_mode_samples_by_volume_and_frees_only_sampled_blocks():
    def work():
        big = [bytearray(1_000_001) for _ in range(200)]  # 1 MB each: always sampled
        small = [bytearray(40) for _ in range(100_000)]  # ~4.1 MB in 41..57-byte blocks
        del big, small

    ev, _, _ = capture_run(work, mode="sampled", sample_bytes=65536)
    big = (ev["size"] == 1_000_002) & np.isin(ev["kind"], [KIND_ALLOC, KIND_CALLOC])
    assert big.sum() == 200
    allocated = set(ev["address"][ev["kind"] != KIND_FREE].tolist())
    freed = ev["address"][ev["kind"] == KIND_FREE]
    assert len(freed) >= 200
    assert set(freed.tolist()) <= allocated
    small = ((ev["size"] > 0) & (ev["size"] < 200)).sum()
    # expected about 100_000 * ~90 bytes (object + buffer) / 65536 ~ 140 samples
    assert 40 <= small <= 400, small


class _Tracked:
    def __init__(self):
        self.payload = list(range(10))


def _pinned_life(box):
    obj = _Tracked()
    box["address"] = capture.block_address(obj)
    box["pinned"] = capture.pin(obj)
    del obj


def test_pinned_objects_report_their_death_in_every_mode():
    for mode in ("full", "aggregated", "sampled"):
        box = {}
        ev, _, _ = capture_run(lambda box=box: _pinned_life(box), mode=mode)
        at = ev["address"] == box["address"]
        assert box["pinned"], mode
        assert (at & (ev["kind"] != KIND_FREE)).sum() == 1, mode
        assert (at & (ev["kind"] == KIND_FREE)).sum() == 1, mode
        alloc_i = np.flatnonzero(at & (ev["kind"] != KIND_FREE))[0]
        free_i = np.flatnonzero(at & (ev["kind"] == KIND_FREE))[0]
        assert ev["ts_ns"][alloc_i] <= ev["ts_ns"][free_i], mode


def test_hooks_only_mode_records_nothing_and_pins_nothing():
    """The benchmark floor: hooks run (stacks are interned) but no event or row is kept."""

    def work():
        keep = [bytearray(1_000 + i) for i in range(200)]
        assert not capture.pin(keep)
        return len(keep)

    ev, rare, result = capture_run(work, mode="hooks-only")
    assert result == 200
    assert len(ev["kind"]) == 0
    assert not rare.get("aggregates", {}).get("stack_id")
    assert capture.stats()["live_blocks"] == 0
