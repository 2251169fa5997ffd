"""The temporal flame graph from the analysis state: exact against the log, for any window.

The fold keeps, per site, the blocks allocated in temporal slot ``a`` and ended in slot
``e > a`` (``temporal``), merging slots pairwise when the run doubles in length; the flame
graph adds the live blocks (``e == slots``). These tests compare that with a from-scratch
computation over the raw events (Python, below) and with the log's matched blocks (SQL), on
random logs whose span forces several doublings, for random windows.
"""

from __future__ import annotations

import random

import pytest

from memscope.analyzers.flame import (
    FlameOptions,
    build_flame,
    log_temporal_cells,
    state_temporal_cells,
    temporal_layout,
)
from memscope.analyzers.fold import FoldParams, PyFold
from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.runner import connect_tables_analyzed
from memscope.analyzers.state import restore_fold

Event = tuple[int, int, int, int, int, int, int]  # pid, ts, kind, address, old, size, stack


def random_log(seed: int, n: int = 3000) -> tuple[LogBuilder, list[Event]]:
    """Allocations, frees, reallocs and reuses of live addresses over two processes."""
    rng = random.Random(seed)
    b = LogBuilder()
    events: list[Event] = []
    stacks: dict[int, list[int]] = {}
    for pid in (1, 2):
        b.process(pid, 0, argv=[f"p{pid}.py"])
        stacks[pid] = [
            b.stack(pid, [("main", "m.py", 1), (f"f{k}", "m.py", 10 + k)]) for k in range(6)
        ]
    live: dict[int, list[int]] = {1: [], 2: []}
    ts = rng.randrange(1, 10**6)
    for _ in range(n):
        ts += rng.choice([1, 7, 100, 3_000, 250_000])
        pid = rng.choice((1, 2))
        stack = rng.choice(stacks[pid])
        q = rng.random()
        if q < 0.45 or not live[pid]:
            address = 0x1000 + 16 * rng.randrange(400)  # may reuse a live address
            size = rng.randrange(1, 5000)
            b.alloc(pid, ts, address, size, stack_id=stack, tid=rng.choice((1, 2)))
            events.append((pid, ts, 0, address, 0, size, stack))
            live[pid].append(address)
        elif q < 0.85:
            address = live[pid].pop(rng.randrange(len(live[pid])))
            b.free(pid, ts, address)
            events.append((pid, ts, 3, 0, address, 0, 0))
        else:
            old = live[pid].pop(rng.randrange(len(live[pid])))
            address = 0x1000 + 16 * rng.randrange(400)
            size = rng.randrange(1, 5000)
            b.realloc(pid, ts, old, address, size, stack_id=stack)
            events.append((pid, ts, 2, address, old, size, stack))
            live[pid].append(address)
    return b, events


def from_scratch(
    events: list[Event], first: int, slot_ns: int, i: int, j: int, pid: int | None = None
) -> dict[tuple[int, int], tuple[int, int]]:
    """(pid, stack) -> (bytes, blocks) allocated in slots i..j and alive at the end of j."""
    lo, hi = first + i * slot_ns, first + (j + 1) * slot_ns  # [lo, hi)
    live: dict[tuple[int, int], tuple[int, int, int]] = {}  # (pid, address) -> ts, size, stack
    for p, ts, kind, address, old, size, stack in events:
        if ts >= hi:
            break
        if kind in (2, 3):
            live.pop((p, old), None)
        if kind in (0, 2):
            live[(p, address)] = (ts, size, stack)  # a live block there ends (reused)
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for (p, _), (ts, size, stack) in live.items():
        if ts >= lo and (pid is None or p == pid):
            nbytes, blocks = out.get((p, stack), (0, 0))
            out[(p, stack)] = (nbytes + size, blocks + 1)
    return out


def window(
    cells: list[tuple[int, int, int, int, int, int]], i: int, j: int
) -> dict[tuple[int, int], tuple[int, int]]:
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for p, stack, a, e, nbytes, blocks in cells:
        if i <= a <= j < e:
            b0, n0 = out.get((p, stack), (0, 0))
            out[(p, stack)] = (b0 + nbytes, n0 + blocks)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_state_cells_answer_random_windows_exactly(seed):
    b, events = random_log(seed)
    con = connect_tables_analyzed(b.tables())
    rng = random.Random(seed)
    for max_slots in (64, 16, 5):
        layout = temporal_layout(con, max_slots)
        assert 1 <= layout["slots"] <= max_slots
        assert max_slots < 32 or layout["slots"] > 32  # the run fills over half the slots
        for pid in (None, 2):
            opts = FlameOptions(temporal=True, pid=pid)
            state = state_temporal_cells(con, opts, layout)
            assert state == log_temporal_cells(con, opts, layout)
            for _ in range(15):
                i = rng.randrange(layout["slots"])
                j = rng.randrange(i, layout["slots"])
                expected = from_scratch(events, layout["first_ts_ns"], layout["slot_ns"], i, j, pid)
                assert window(state, i, j) == expected, (max_slots, pid, i, j)
    con.close()


def test_the_model_from_the_state_equals_the_model_from_the_log():
    b, _ = random_log(7, 1500)
    con = connect_tables_analyzed(b.tables())
    from_state = build_flame(con, FlameOptions(temporal=True))
    t = from_state["temporal"]
    assert 32 < t["slots"] <= 64 and t["cells"]["node"]
    # the thread filter takes the log's path; tid None there means every thread
    layout = temporal_layout(con)
    assert log_temporal_cells(con, FlameOptions(temporal=True), layout) == state_temporal_cells(
        con, FlameOptions(temporal=True), layout
    )
    assert not FlameOptions(temporal=True).needs_log
    assert FlameOptions(temporal=True, tid=1).needs_log
    con.close()


def test_twins_keep_the_same_cells_across_doublings_and_restore():
    _, events = random_log(3, 2000)
    params = FoldParams()
    py = PyFold(**params.as_dict())
    cols: dict[str, list[int]] = {
        k: []
        for k in (
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
        )
    }
    for n, (pid, ts, kind, address, old, size, stack) in enumerate(events):
        for k, v in zip(cols, (pid, 1, n, ts, kind, 0, address, old, size, stack), strict=True):
            cols[k].append(v)
    import numpy as np

    from memscope.protocol.log_schema import MEMORY

    arrays = {k: np.array(v, dtype=MEMORY.field(k).type.to_pandas_dtype()) for k, v in cols.items()}
    half = {k: v[:1000] for k, v in arrays.items()}
    rest = {k: v[1000:] for k, v in arrays.items()}
    py.feed(**half)
    c = restore_fold(params, py.export())
    py.feed(**rest)
    c.feed(**rest)
    a, b = py.export(["temporal"])["temporal"], c.export(["temporal"])["temporal"]
    assert len(a["a"]) > 10 and int(a["e"].max()) > 32
    for name in a:
        assert (a[name] == b[name]).all(), name
