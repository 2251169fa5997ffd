"""process_stats: exact totals and peak, checked against a replay in Python."""

import numpy as np
import pytest

from memscope.analyzers import memstats
from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.memstats import process_stats
from memscope.analyzers.runner import connect_tables_analyzed


def test_known_totals():
    b = LogBuilder()
    b.alloc(1, 10, 0x100, 100)
    b.alloc(1, 20, 0x200, 50)
    b.free(1, 30, 0x100)
    b.realloc(1, 40, 0x200, 0x300, 80)
    b.free(1, 45, 0x999)  # a block allocated before tracing: ignored, counted
    b.alloc(1, 50, 0x400, 10)
    b.aggregate(1, 60, 0, alloc_count=7, alloc_bytes=700)
    stats = process_stats(connect_tables_analyzed(b.tables()))
    assert stats == {
        "active_memory": 90,
        "peak_memory": 150,
        "peak_ts_ns": 20,
        "active_allocations": 2,
        "total_allocations": 4 + 7,
        "total_allocated": 240 + 700,
        "total_deallocations": 2 + 7,
        "total_freed": 150 + 700,
        "unmatched_frees": 1,
        "unrecorded_frees": 0,
        "folded_allocations": 7,
        "folded_bytes": 700,
        "total_deallocated": 150 + 700,
        "peak_memory_source": "log",
        "active_memory_source": "log",
        "modes": [],
    }


def test_per_process_stats_are_separate():
    b = LogBuilder()
    b.alloc(1, 10, 0x100, 100)
    b.alloc(2, 11, 0x100, 30)
    b.free(2, 12, 0x100)
    con = connect_tables_analyzed(b.tables())
    assert process_stats(con, 1)["active_memory"] == 100
    assert process_stats(con, 2)["active_memory"] == 0
    assert process_stats(con, 2)["peak_memory"] == 30
    assert process_stats(con)["peak_memory"] == 130


def test_in_place_realloc_does_not_count_both_blocks_at_the_peak():
    b = LogBuilder()
    b.alloc(1, 10, 0x100, 100)
    b.realloc(1, 20, 0x100, 0x100, 120)
    assert process_stats(connect_tables_analyzed(b.tables()))["peak_memory"] == 120


def test_empty_log():
    stats = process_stats(connect_tables_analyzed({}))
    assert stats["peak_memory"] == 0 and stats["peak_ts_ns"] is None
    assert stats["total_allocations"] == 0


def _random_log(rng, b=None, pid=1):
    b = b or LogBuilder()
    live, level, best, best_t, t = {}, 0, 0, None, 0
    for i in range(int(rng.integers(1, 300))):
        t += int(rng.integers(0, 3))
        if live and rng.random() < 0.45:
            addr = list(live)[int(rng.integers(0, len(live)))]
            if rng.random() < 0.3:
                size = int(rng.integers(1, 1000))
                new = addr if rng.random() < 0.5 else 10**6 + i
                b.realloc(pid, t, addr, new, size)
                level += size - live.pop(addr)
                live[new] = size
            else:
                b.free(pid, t, addr)
                level -= live.pop(addr)
        else:
            addr = int(rng.integers(1, 50)) * 16
            if addr in live:
                continue
            size = int(rng.integers(1, 1000))
            b.alloc(pid, t, addr, size)
            live[addr] = size
            level += size
        if level > best:
            best, best_t = level, t
    return b, {
        "peak_memory": best,
        "peak_ts_ns": best_t,
        "active_memory": level,
        "active_allocations": len(live),
    }


@pytest.mark.parametrize("seed", range(12))
def test_peak_matches_a_python_replay(seed):
    rng = np.random.default_rng(seed)
    b, expected = _random_log(rng)
    # windows of a few events: the state folds the log window by window
    con = connect_tables_analyzed(b.tables(), window_rows=int(rng.integers(1, 30)))
    stats = process_stats(con)
    assert {k: stats[k] for k in expected} == expected


@pytest.mark.parametrize("seed", range(4))
def test_per_process_peaks_match_a_python_replay(seed):
    rng = np.random.default_rng(100 + seed)
    b, first = _random_log(rng, pid=1)
    b, second = _random_log(rng, b, pid=2)
    con = connect_tables_analyzed(b.tables())
    for pid, expected in ((1, first), (2, second)):
        stats = process_stats(con, pid)
        assert {k: stats[k] for k in expected} == expected


def _aggregated_log():
    """An aggregated-mode process: a 6,000-byte transient folded at the source."""
    b = LogBuilder()
    b.process(1, 0, mode="aggregated")
    b.alloc(1, 10, 0x100, 1000)
    b.free(1, 20, 0x100)
    b.alloc(1, 30, 0x200, 500)
    b.aggregate(1, 40, 0, alloc_count=3, alloc_bytes=6000)
    b.producer_stats(1, 50, events=3, current_bytes=500, peak_bytes=6500)
    return b


def test_aggregated_mode_uses_the_measured_peak():
    con = connect_tables_analyzed(_aggregated_log().tables())
    for pid in (1, None):
        stats = process_stats(con, pid)
        assert stats["peak_memory"] == 6500 and stats["peak_ts_ns"] is None
        assert stats["peak_memory_source"] == memstats.MEASURED
        assert stats["active_memory"] == 500 and stats["active_memory_source"] == memstats.MEASURED


def test_aggregated_mode_keeps_the_log_peak_when_it_is_higher():
    b = _aggregated_log()
    b.producer_stats(1, 60, events=4, current_bytes=500, peak_bytes=900)
    stats = process_stats(connect_tables_analyzed(b.tables()), 1)
    assert stats["peak_memory"] == 1000 and stats["peak_ts_ns"] == 10
    assert stats["peak_memory_source"] == "log"


def test_full_mode_ignores_in_process_figures():
    b = LogBuilder()
    b.process(1, 0, mode="full")
    b.alloc(1, 10, 0x100, 1000)
    b.producer_stats(1, 50, events=1, current_bytes=7, peak_bytes=99_999)
    stats = process_stats(connect_tables_analyzed(b.tables()), 1)
    assert stats["peak_memory"] == 1000 and stats["peak_memory_source"] == "log"
    assert stats["active_memory"] == 1000


def test_sampled_mode_scales_samples_to_estimates():
    b = LogBuilder()
    b.process(1, 0, mode="sampled", sample_bytes=1000)
    b.alloc(1, 10, 0x100, 1000)  # p = 1 - e^-1: stands for 1.582 blocks, 1582 bytes
    b.alloc(1, 20, 0x200, 100_000)  # p ~ 1: stands for itself
    b.free(1, 30, 0x200)
    stats = process_stats(connect_tables_analyzed(b.tables()), 1)
    w = 1 / (1 - np.exp(-1.0))
    assert stats["estimated"] is True and stats["sample_bytes"] == [1000]
    assert stats["samples"] == {
        "allocations": 2,
        "allocated": 101_000,
        "deallocations": 1,
        "freed": 100_000,
        "active_allocations": 1,
        "active_memory": 1000,
        "peak_memory": 101_000,
    }
    assert stats["total_allocations"] == round(w + 1)
    assert stats["total_allocated"] == round(1000 * w + 100_000)
    assert stats["active_memory"] == round(1000 * w)
    assert stats["peak_memory"] == round(1000 * w) + 100_000 and stats["peak_ts_ns"] == 20
