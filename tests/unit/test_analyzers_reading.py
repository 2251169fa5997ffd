"""Reading the memory table for block matching: bounded read-ahead and the packed sort."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from memscope.analyzers.blocks import block_order
from memscope.analyzers.prefetch import prefetched


def test_prefetched_yields_every_item_in_order() -> None:
    assert list(prefetched(iter(range(1000)), depth=3)) == list(range(1000))


def test_prefetched_stays_within_its_depth() -> None:
    produced: list[int] = []

    def items():
        for i in range(100):
            produced.append(i)
            yield i

    stream = prefetched(items(), depth=4)
    assert next(stream) == 0
    time.sleep(0.3)  # the thread runs ahead as far as it may
    # one item handed out, ``depth`` waiting in the queue, one computed and waiting to go in
    assert len(produced) <= 1 + 4 + 1
    stream.close()


def test_prefetched_raises_the_iterators_error_where_it_happened() -> None:
    def items():
        yield 1
        yield 2
        raise OSError("segment unreadable")

    stream = prefetched(items(), depth=2)
    assert next(stream) == 1
    assert next(stream) == 2
    with pytest.raises(OSError, match="segment unreadable"):
        next(stream)


def test_closing_early_stops_the_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    stream = prefetched(iter(range(10**9)), depth=2)
    next(stream)
    stream.close()
    time.sleep(0.05)
    left = [
        t for t in threading.enumerate() if t.ident not in before and t.name == "memscope-prefetch"
    ]
    assert left == []


def test_prefetched_refuses_a_depth_below_one() -> None:
    with pytest.raises(ValueError, match="depth"):
        next(prefetched([1], depth=0))


def _rows(rng: np.random.Generator, n: int, pids: np.ndarray, high_addresses: bool):
    pid = rng.choice(pids, n).astype(np.uint32)
    top = 1 << 63 if high_addresses else 1 << 47
    address = rng.integers(0, 64, n).astype(np.uint64) * np.uint64(16) + np.uint64(top - 4096)
    ts = rng.integers(0, 50, n).astype(np.int64)  # many ties, so seq and start decide
    seq = rng.integers(0, 1 << 40, n).astype(np.uint64)
    seq[: n // 4] = seq[n // 4 : 2 * (n // 4)]  # equal seq: ends must come before starts
    start = rng.random(n) < 0.5
    return pid, address, ts, seq, start


@pytest.mark.parametrize("case", ["packed", "high addresses", "many pids"])
def test_block_order_equals_the_five_key_lexsort(case: str) -> None:
    rng = np.random.default_rng(7)
    pids = np.arange(1, 70_000 if case == "many pids" else 5, dtype=np.uint32)
    n = 200_000
    pid, address, ts, seq, start = _rows(rng, n, pids, case == "high addresses")
    expected = np.lexsort((start, seq, ts, address, pid))
    assert np.array_equal(block_order(pid, address, ts, seq, start), expected)


def test_block_order_of_no_rows() -> None:
    empty = np.zeros(0, np.uint64)
    order = block_order(
        empty.astype(np.uint32), empty, empty.astype(np.int64), empty, empty.astype(bool)
    )
    assert len(order) == 0
