"""Capture-level ground truth: allocate known sizes, drain, decode, compare."""

import sys
import time

import numpy as np
import pytest
from tracer_util import decode_all, drain

from memscope.producer import capture
from memscope.protocol.wire import (
    DOMAIN_OBJ,
    DOMAIN_RAW,
    KIND_ALLOC,
    KIND_CALLOC,
    KIND_FREE,
    KIND_REALLOC,
)


@pytest.fixture
def traced():
    drain()  # discard anything left by an earlier test
    capture.start("full")
    yield
    capture.stop()
    drain()


def _drain_stopped():
    capture.stop()
    return drain()


def test_known_sizes_are_recorded_with_their_frees(traced):
    shipped_before = capture.stats()["shipped_events"]
    sizes = [1_000_003, 2_000_017, 3_000_029]  # odd sizes no other allocation in the run has
    blocks = [bytearray(n) for n in sizes]
    addresses = [capture.block_address(b) for b in blocks]
    del blocks
    chunks, rare = _drain_stopped()
    ev = decode_all(chunks)
    for size in sizes:
        # bytearray(n) allocates n + 1 bytes (a trailing NUL) for its buffer
        hits = np.flatnonzero(ev["size"] == size + 1)
        assert len(hits) == 1, size
        addr = ev["address"][hits[0]]
        assert ev["kind"][hits[0]] in (KIND_ALLOC, KIND_REALLOC)
        frees = np.flatnonzero((ev["kind"] == KIND_FREE) & (ev["address"] == addr))
        assert len(frees) >= 1 and frees[-1] > hits[0]
    # the bytearray objects themselves (not their buffers) die too
    for addr in addresses:
        assert ((ev["kind"] == KIND_FREE) & (ev["address"] == addr)).any()
    stats = rare["producer_stats"]
    assert stats["events"][-1] - shipped_before == len(ev["kind"])
    assert stats["drops"][-1] == 0


def test_sum_of_sizes_matches(traced):
    before = drain()  # nothing of interest yet
    del before
    keep = [bytes(5000 + i) for i in range(200)]
    chunks, _ = _drain_stopped()
    ev = decode_all(chunks)
    expected = {5000 + i + 33 for i in range(200)}  # bytes object = header (33) + payload
    fresh = np.isin(ev["kind"], [KIND_ALLOC, KIND_CALLOC])  # bytes(n) is zeroed: calloc
    got = ev["size"][fresh & np.isin(ev["size"], list(expected))]
    assert sorted(got.tolist()) == sorted(expected)
    assert int(got.sum()) == sum(expected)
    del keep


def test_timestamps_are_monotonic_ns_of_this_process(traced):
    t0 = time.monotonic_ns()
    marker = bytearray(7_777_777)
    t1 = time.monotonic_ns()
    chunks, _ = _drain_stopped()
    ev = decode_all(chunks)
    (hit,) = np.flatnonzero(ev["size"] == 7_777_778)
    ts = int(ev["ts_ns"][hit])
    # the TSC calibration is good to well under a microsecond over this interval
    assert t0 - 20_000 <= ts <= t1 + 20_000, (t0, ts, t1)
    del marker


#: How far a TSC-stamped event may be from the program's own CLOCK_MONOTONIC readings.
CALIBRATION_MARGIN_NS = 20_000


def _bytearray_deaths(sizes):
    """Stop tracing; the time of the free of each bytearray of ``sizes`` (made while traced)."""
    chunks, _ = _drain_stopped()
    ev = decode_all(chunks)
    deaths = []
    for size in sizes:
        (born,) = np.flatnonzero(ev["size"] == size + 1)  # bytearray's trailing NUL
        frees = np.flatnonzero((ev["kind"] == KIND_FREE) & (ev["address"] == ev["address"][born]))
        deaths.append(int(ev["ts_ns"][frees[frees > born][0]]))
    return deaths


def test_a_free_is_never_stamped_before_a_clock_reading_that_preceded_it(traced):
    # A free may reuse the thread's last clock reading only while no Python code ran since
    # it was taken; here Python code (a sleep and the program's own clock reading) always
    # runs between the allocation and the free, so a reused reading would be ~1 ms early.
    sizes = [4_000_037 + k for k in range(5)]
    readings = []
    for size in sizes:
        block = bytearray(size)
        time.sleep(0.001)  # no other thread: the GIL changes hands with no one
        readings.append(time.monotonic_ns())
        del block
    for size, seen, died in zip(sizes, readings, _bytearray_deaths(sizes), strict=True):
        assert died >= seen - CALIBRATION_MARGIN_NS, (size, seen - died)


def _kill(items, i):
    items[i] = None


def test_deaths_in_a_loop_that_reads_a_clock_without_allocating_are_not_stamped_early(traced):
    # Each free happens at the same frame address and instruction (the same call of _kill
    # from the same loop); between them the program reads a clock (a float: no allocation)
    # and sleeps, recording no event. A free that reused an earlier reading would be ~2 ms
    # before the program's own reading.
    sizes = [3_000_017 + k for k in range(4)]
    blocks = [bytearray(size) for size in sizes]
    readings = [0.0] * len(sizes)
    for k in range(len(sizes)):
        readings[k] = time.perf_counter()  # CLOCK_MONOTONIC on Linux, as the tracer's ns
        time.sleep(0.002)
        _kill(blocks, k)
    for size, seen, died in zip(sizes, readings, _bytearray_deaths(sizes), strict=True):
        assert died >= seen * 1e9 - CALIBRATION_MARGIN_NS, (size, seen * 1e9 - died)


def test_raw_domain_and_obj_domain_are_distinguished(traced):
    data = bytearray(9_999_991)  # big buffers: PyObject_Malloc (OBJ), PyMem_Malloc on 3.13
    chunks, _ = _drain_stopped()
    ev = decode_all(chunks)
    (hit,) = np.flatnonzero(ev["size"] == 9_999_992)
    assert ev["domain"][hit] == (DOMAIN_OBJ if sys.version_info < (3, 13) else 1)
    assert set(np.unique(ev["domain"])) <= {DOMAIN_RAW, 1, DOMAIN_OBJ, 3}
    del data


def test_start_twice_is_refused(traced):
    with pytest.raises(RuntimeError, match="already started"):
        capture.start()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown capture mode"):
        capture.start("everything")
    assert not capture.is_active()


def test_a_threads_decoded_times_never_step_back_across_drains():
    """Each drain maps its chunks' clock ticks to nanoseconds with a new reference reading:
    where one drain's chunk ends and the next one's begins, a thread's times must not go
    backwards (an alloc and its free would swap places)."""
    import sys
    import threading

    stop = threading.Event()

    def churn():
        while not stop.is_set():
            for _ in range(200):
                blob = [0] * 4
                del blob

    drain()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # the drains get the GIL soon, often
    capture.start("full", numpy=False, ffi=False)
    worker = threading.Thread(target=churn)
    worker.start()
    while capture.thread_id_of(worker.ident) == 0:  # until its first traced allocation
        time.sleep(0.0001)
    worker_tid = capture.thread_id_of(worker.ident)
    per_drain, offsets = [], []
    try:
        for _ in range(600):
            time.sleep(0.0005)
            before = time.monotonic_ns()
            chunks, _ = drain()
            after = time.monotonic_ns()
            mine = [c for c in chunks if c["tid"] == worker_tid]
            per_drain.append(mine)
            if mine:  # the worker's last event: around the drain, on the clock
                last = int(decode_all(mine[-1:])["ts_ns"][-1])
                offsets.append((last - before, last - after))
    finally:
        stop.set()
        worker.join()
        capture.stop()
        sys.setswitchinterval(switch)
    times = [decode_all(chunks)["ts_ns"] for chunks in per_drain if chunks]
    assert len(times) > 100
    ts = np.concatenate(times)
    steps = np.diff(ts)
    assert (steps >= 0).all(), (steps.min(), int((steps < 0).sum()))
    # and the seams stay on the clock, drain after drain: the worker's last event is taken
    # just before its drain ends (it allocates while the drain gathers without the GIL; the
    # median, since now and then it waited for the GIL or the CPU)
    early = np.median([o[0] for o in offsets])  # measured: -3 to -12 µs
    late = max(o[1] for o in offsets)
    assert -100_000 < early and late < CALIBRATION_MARGIN_NS, (early, late)
