"""memscope-rs's read API: export_to_svg, get_active_allocations, get_allocation_history and
MemoryStats' peak_allocations / leaked_allocations / leaked_memory, against ground truth."""

from __future__ import annotations

import json

import pytest
from api_support import clean_env, python

pytestmark = pytest.mark.timeout(240)

K, M, P = 3000, 2000, 20000

PROGRAM = f"""
import json, sys
import memscope

memscope.init(log_dir=sys.argv[1])
keep = []


def keep_forever():
    for _ in range({K}):
        keep.append(bytes(1000))  # one block of 1033 bytes each, never freed


def churn():
    for _ in range({M}):
        scratch = bytes(2000)  # one block of 2033 bytes each, freed at once
        del scratch


def at_peak():
    held = [bytes(1500) for _ in range({P})]
    return len(held)


keep_forever()
big = bytearray(4096)  # a fresh block (a list may come off CPython's free list)
memscope.track_var(big)
churn()
at_peak()
tracker = memscope.get_global_tracker()
running = tracker.get_stats()
memscope.shutdown()
stats = tracker.get_stats()
active = tracker.get_active_allocations()
history = tracker.get_allocation_history()
svg = tracker.export_to_svg(sys.argv[2])
print(json.dumps({{
    "running": [running.peak_allocations, running.leaked_allocations, running.leaked_memory,
                running.active_allocations, running.active_memory],
    "stats": {{k: getattr(stats, k) for k in ("peak_allocations", "leaked_allocations",
                                               "leaked_memory", "peak_ts_ns", "active_memory",
                                               "active_allocations")}},
    "active": [[a.size, a.location, a.free_ts_ns] for a in active],
    "named": [[a.var_name, a.type_name] for a in active if a.var_name],
    "history": [[h.size, h.location, h.ts_ns, h.free_ts_ns] for h in history],
    "svg": open(svg).read(200),
}}))
"""


def test_seed_api_against_ground_truth(tmp_path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    done = python(
        [script, tmp_path / "run" / "events", tmp_path / "out.svg"], env=clean_env(), timeout=200
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    # While the process is traced the fields hold the figures so far: the blocks alive at
    # the peak (the P held ones were freed since), and those not freed yet as the leaks.
    peak_blocks, leaked_blocks, leaked_bytes, active_blocks, active_bytes = got["running"]
    assert peak_blocks >= P + K
    assert (leaked_blocks, leaked_bytes) == (active_blocks, active_bytes)
    assert K <= leaked_blocks < P and leaked_bytes >= K * 1033
    stats, active, history = got["stats"], got["active"], got["history"]
    # Leaks: exactly the blocks still allocated at the end, the K kept ones among them.
    assert stats["leaked_allocations"] == len(active) == stats["active_allocations"]
    assert stats["leaked_memory"] == sum(size for size, _, _ in active) == stats["active_memory"]
    kept = [a for a in active if a[0] == 1033 and (a[1] or "").startswith("keep_forever ")]
    assert len(kept) == K
    assert all(a[2] is None for a in active)
    # The tracked object's block carries its name and type.
    assert got["named"] == [["big", "bytearray"]]
    # History: every block, the M churned ones with their frees.
    churned = [h for h in history if h[0] == 2033 and (h[1] or "").startswith("churn ")]
    assert len(churned) == M and all(h[3] is not None for h in churned)
    assert len(history) > len(active) + M
    # Peak blocks: what was alive at the peak's instant, counted over the history.
    at = stats["peak_ts_ns"]
    alive = sum(1 for _, _, ts, free in history if ts <= at and (free is None or free > at))
    assert stats["peak_allocations"] == alive
    assert stats["peak_allocations"] >= P + K
    assert got["svg"].lstrip().startswith(("<svg", "<?xml"))
