"""The streaming state equals a from-scratch computation, however the log is cut.

Random logs (reused addresses, double and unmatched frees, reallocs, several processes and
threads, a sampled process) are folded window by window (random window sizes), and with a
checkpoint written and read back half-way; every total is compared with the SQL block
matching of :mod:`memscope.analyzers.views` over the whole log (one window over every event,
computed from scratch) and with a plain Python replay of the peak.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from memscope.analyzers.fold import FoldParams
from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.memstats import process_stats
from memscope.analyzers.runner import connect_tables_analyzed
from memscope.analyzers.state import AnalysisState, _feed, windows
from memscope.analyzers.views import connect_tables
from memscope.protocol.wire import DOMAIN_MEM, DOMAIN_OBJ, DOMAIN_RAW

DOMAINS = (DOMAIN_RAW, DOMAIN_MEM, DOMAIN_OBJ)


def _random_log(rng: np.random.Generator, sampled: bool = False) -> LogBuilder:
    b = LogBuilder()
    pids = [100 + i for i in range(int(rng.integers(1, 4)))]
    for pid in pids:
        mode = "sampled" if sampled and pid == pids[-1] else "full"
        b.process(pid, 0, mode=mode, sample_bytes=256 if mode == "sampled" else None)
    stacks = {
        pid: [b.stack(pid, [("main", "app.py", 1), (f"f{i}", "app.py", 10 + i)]) for i in range(4)]
        for pid in pids
    }
    live: dict[int, list[int]] = {pid: [] for pid in pids}
    ts = 1000
    for _ in range(int(rng.integers(50, 400))):
        ts += int(rng.integers(1, 50))  # strictly increasing: no ties to order
        pid = int(rng.choice(pids))
        tid = int(rng.integers(1, 4))
        address = 0x1000 + 0x10 * int(rng.integers(0, 40))  # a small pool: reuse
        size = int(rng.integers(1, 300))
        stack = int(rng.choice(stacks[pid]))
        domain = int(rng.choice(DOMAINS))
        roll = rng.random()
        if roll < 0.45:
            b.alloc(
                pid,
                ts,
                address,
                size,
                tid=tid,
                stack_id=stack,
                domain=domain,
                calloc=bool(rng.random() < 0.2),
            )
            live[pid].append(address)
        elif roll < 0.8:
            victim = (
                live[pid].pop(int(rng.integers(0, len(live[pid]))))
                if live[pid] and rng.random() < 0.8
                else address
            )  # else unmatched or double
            b.free(pid, ts, victim, tid=tid, domain=domain)
        else:
            old = live[pid][-1] if live[pid] and rng.random() < 0.8 else 0
            new = old if old and rng.random() < 0.3 else address
            b.realloc(pid, ts, old, new, size, tid=tid, stack_id=stack, domain=domain)
            if old in live[pid]:
                live[pid].remove(old)
            live[pid].append(new)
    return b


def _scratch(b: LogBuilder) -> dict[str, dict]:
    """Totals per pid and per site from the SQL window matching over the whole log."""
    con = connect_tables(b.tables())
    per_pid = {
        r[0]: r[1:]
        for r in con.execute(
            """SELECT pid, count(*), sum(size), count(free_ts_ns),
                  coalesce(sum(size) FILTER (WHERE free_ts_ns IS NOT NULL), 0),
                  count(*) FILTER (WHERE end_kind IS NULL),
                  coalesce(sum(size) FILTER (WHERE end_kind IS NULL), 0),
                  count(*) FILTER (WHERE end_kind = 'reused')
        FROM allocations GROUP BY pid"""
        ).fetchall()
    }
    unmatched = dict(
        con.execute("SELECT pid, count(*) FROM frees WHERE NOT matched GROUP BY pid").fetchall()
    )
    sites = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            """SELECT pid, stack_id, count(*), sum(size),
                  count(*) FILTER (WHERE end_kind IS NULL),
                  coalesce(sum(size) FILTER (WHERE end_kind IS NULL), 0)
        FROM allocations GROUP BY pid, stack_id"""
        ).fetchall()
    }
    blocks = con.execute(
        "SELECT pid, ts_ns, size, coalesce(free_ts_ns, reused_ts_ns) FROM ("
        "SELECT a.*, CASE WHEN end_kind = 'reused' THEN "
        "  (SELECT min(b.ts_ns) FROM allocations b WHERE b.pid = a.pid AND "
        "   b.address = a.address AND b.ts_ns > a.ts_ns) END AS reused_ts_ns "
        "FROM allocations a)"
    ).fetchall()
    return {"per_pid": per_pid, "unmatched": unmatched, "sites": sites, "blocks": blocks}


def _replay_peak(blocks: list[tuple], pid: int | None) -> int:
    deltas = []
    for p, start, size, end in blocks:
        if pid is not None and p != pid:
            continue
        deltas.append((start, 1, size))
        if end is not None:
            deltas.append((end, 0, -size))
    level = best = 0
    for _, _, delta in sorted(deltas):
        level += delta
        best = max(best, level)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_streaming_state_equals_a_from_scratch_computation(seed):
    rng = np.random.default_rng(seed)
    b = _random_log(rng)
    expected = _scratch(b)
    con = connect_tables_analyzed(b.tables(), window_rows=int(rng.integers(1, 60)))
    for pid, (n, nbytes, nf, bf, live, live_bytes, reused) in expected["per_pid"].items():
        stats = process_stats(con, pid)
        assert (
            stats["total_allocations"],
            stats["total_allocated"],
            stats["total_deallocations"],
            stats["total_freed"],
            stats["active_allocations"],
            stats["active_memory"],
            stats["unrecorded_frees"],
        ) == (n, nbytes, nf, bf, live, live_bytes, reused)
        assert stats["unmatched_frees"] == expected["unmatched"].get(pid, 0)
        assert stats["peak_memory"] == _replay_peak(expected["blocks"], pid)
    assert process_stats(con)["peak_memory"] == _replay_peak(expected["blocks"], None)
    sites = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            """SELECT pid, stack_id, sum(allocations), sum(bytes_allocated), sum(live_blocks),
                  sum(live_bytes) FROM sites GROUP BY pid, stack_id"""
        ).fetchall()
    }
    assert sites == expected["sites"]


@pytest.mark.parametrize("seed", range(6))
def test_a_checkpoint_half_way_changes_nothing(seed, tmp_path):
    rng = np.random.default_rng(1000 + seed)
    b = _random_log(rng, sampled=True)
    tables = b.tables()
    params = FoldParams(initial_width_ns=1, timeline_buckets=64, site_slots=8)
    whole = AnalysisState(params)
    for batch in tables["processes"].to_batches():
        whole.register_processes(batch)
    for window in windows(tables["memory"].to_batches(), 17):
        _feed(whole.fold, window)
    memory = tables["memory"]
    cut = int(rng.integers(1, memory.num_rows))
    first = AnalysisState(params)
    for batch in tables["processes"].to_batches():
        first.register_processes(batch)
    for window in windows(memory.slice(0, cut).to_batches(), 17):
        _feed(first.fold, window)
    first.save(tmp_path / "state")
    again = AnalysisState.load(tmp_path / "state", None, params)  # type: ignore[arg-type]
    assert again is not None
    for window in windows(memory.slice(cut).to_batches(), 17):
        _feed(again.fold, window)
    a, c = whole.fold.export(), again.fold.export()
    for name in a:
        for column in a[name]:
            assert np.array_equal(a[name][column], c[name][column]), (name, column)


def test_sampled_process_estimates_are_horvitz_thompson_sums():
    rng = np.random.default_rng(7)
    b = _random_log(rng, sampled=True)
    con = connect_tables_analyzed(b.tables())
    pid = int(con.execute("SELECT max(pid) FROM processes").fetchall()[0][0])
    sizes = [
        s for (s,) in con.execute("SELECT size FROM allocations WHERE pid = ?", [pid]).fetchall()
    ]
    stats = process_stats(con, pid)
    weight = [1.0 / (1.0 - math.exp(-max(s, 1) / 256)) for s in sizes]
    assert stats["estimated"] is True
    assert stats["total_allocations"] == round(sum(weight))
    assert stats["samples"]["allocations"] == len(sizes)


def test_an_open_segment_is_read_from_where_the_last_read_stopped(tmp_path):
    """Whole messages only: a batch still being written is read on the next call."""
    from types import SimpleNamespace

    import pyarrow as pa
    import pyarrow.ipc as ipc

    from memscope.analyzers.state import LogCursor

    schema = pa.schema([("pid", pa.uint32()), ("n", pa.int64())])
    path = tmp_path / "processes" / "processes-000000.arrow"
    path.parent.mkdir()
    sink = pa.OSFile(str(path), "wb")
    writer = ipc.new_file(sink, schema, options=ipc.IpcWriteOptions(compression="lz4"))

    def batch(i):
        return pa.record_batch([pa.array([i] * 3, pa.uint32()), pa.array([i, i, i])], schema=schema)

    segment = SimpleNamespace(path=path, closed=False)
    reader = SimpleNamespace(segments=lambda table: [segment])
    cursor = LogCursor()
    writer.write_batch(batch(1))
    sink.flush()
    assert [b.num_rows for b in cursor.new_batches(reader, "processes")] == [3]
    writer.write_batch(batch(2))
    sink.flush()
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])  # the second batch cut short: not read yet
    assert list(cursor.new_batches(reader, "processes")) == []
    path.write_bytes(whole)
    (got,) = cursor.new_batches(reader, "processes")
    assert got.column("pid").to_pylist() == [2, 2, 2]
    assert cursor.rows["processes/processes-000000.arrow"] == 6
    # a fresh cursor that knows only the row count (a checkpoint) skips what was read
    again = LogCursor(rows=dict(cursor.rows))
    writer.write_batch(batch(3))
    sink.flush()
    (third,) = again.new_batches(reader, "processes")
    assert third.column("pid").to_pylist() == [3, 3, 3]


def test_events_arriving_a_batch_late_are_folded_in_time_order():
    """A drain reads threads one after another: thread 2's older events come a batch later."""
    b = LogBuilder()
    b.process(1, 0)
    b.alloc(1, 1_000_014, 0x100, 64, tid=1)  # first batch: thread 1, the later events
    b.alloc(1, 1_000_015, 0x200, 32, tid=1)
    b.alloc(1, 1_000_008, 0x100, 16, tid=2)  # next batch: thread 2, earlier in time
    b.free(1, 1_000_012, 0x100, tid=2)
    memory = b.tables()["memory"]

    def fold(hold_ns):
        state = AnalysisState(FoldParams())
        for window in windows(memory.to_batches(max_chunksize=2), 2, hold_ns):
            _feed(state.fold, window)
        return state.fold.export()["processes"]

    wrong, right = fold(0), fold(1_000_000_000)
    assert (int(wrong["reused"][0]), int(wrong["live_bytes"][0])) == (1, 32)  # 64 B lost
    assert (int(right["reused"][0]), int(right["unmatched_frees"][0])) == (0, 0)
    assert int(right["live_bytes"][0]) == 64 + 32
