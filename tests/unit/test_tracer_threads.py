"""Threads: many at once, churn, ignored threads, the reentrancy guard."""

import os
import threading
import time

import numpy as np
from tracer_util import capture_run, decode_all, drain

from memscope.producer import capture
from memscope.protocol.wire import KIND_FREE

BASE = 4_100_000


def _wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_sixteen_threads_allocating_at_once():
    start = threading.Barrier(16)
    idents = {}

    def worker(k):
        idents[k] = capture.thread_id()
        start.wait()
        for j in range(50):
            blob = bytearray(BASE + k * 100 + j)  # a size only this thread and j use
            del blob
        # plenty of small objects too, to cross block boundaries
        junk = [str(i) * 3 for i in range(20_000)]
        del junk

    def run():
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    ev, rare, _ = capture_run(run)
    for k in range(16):
        sizes = {BASE + k * 100 + j + 1 for j in range(50)}
        mine = np.isin(ev["size"], list(sizes))
        assert mine.sum() == 50, k
        assert set(ev["tid"][mine].tolist()) == {idents[k]}
        addrs = ev["address"][mine]
        frees = ev["address"][(ev["kind"] == KIND_FREE) & (ev["tid"] == idents[k])]
        assert np.isin(addrs, frees).all()
    assert rare["producer_stats"]["drops"][-1] == 0
    # within a thread, stamps never go backwards (decode order is record order)
    for tid in set(ev["tid"].tolist()):
        ts = ev["ts_ns"][ev["tid"] == tid]
        assert (np.diff(ts) >= 0).all(), tid


def test_thread_churn_reaps_exited_threads():
    def short(k):
        blob = bytearray(BASE + 7_000 + k)
        del blob

    native_ids = []

    def run():
        for k in range(300):
            t = threading.Thread(target=short, args=(k,))
            t.start()
            t.join()
            native_ids.append(t.native_id)

    drain()
    pending_before = capture.stats()["pending_bytes"]  # threads other tests left alive
    ev, _, _ = capture_run(run)
    found = np.isin(ev["size"], [BASE + 7_000 + k + 1 for k in range(300)])
    assert found.sum() == 300
    assert len(set(ev["tid"][found].tolist())) >= 1
    # join() returns once Python is done with a thread; the thread-exit destructor that hands
    # its buffer over for reaping runs later, before the OS thread ends. Wait for the OS
    # threads to be gone (a loaded machine may take a while), then ONE drain must reap them all.
    assert _wait_until(
        lambda: not any(os.path.exists(f"/proc/self/task/{n}") for n in native_ids), timeout=60
    )
    drain()
    assert capture.stats()["pending_bytes"] <= pending_before + 2 * 65536


def test_ignored_thread_is_not_traced():
    def ignored():
        capture.ignore_current_thread()
        blob = bytearray(BASE + 9_001)
        del blob

    def traced():
        blob = bytearray(BASE + 9_002)
        del blob

    def run():
        for target in (ignored, traced):
            t = threading.Thread(target=target)
            t.start()
            t.join()

    ev, _, _ = capture_run(run)
    assert (ev["size"] == BASE + 9_001 + 1).sum() == 0
    assert (ev["size"] == BASE + 9_002 + 1).sum() == 1


def test_drain_while_threads_allocate():
    stop = threading.Event()
    counts = []

    def worker():
        n = 0
        while not stop.is_set():
            blob = bytearray(BASE + 11_111)
            del blob
            n += 1
        counts.append(n)

    drain()
    capture.start()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    parts = []
    for _ in range(20):
        parts.append(drain()[0])
    stop.set()
    for t in threads:
        t.join()
    capture.stop()
    parts.append(drain()[0])
    ev = decode_all([chunk for chunks in parts for chunk in chunks])
    assert (ev["size"] == BASE + 11_112).sum() == sum(counts)


def test_frees_of_blocks_allocated_before_start_are_tolerated():
    old = [bytearray(BASE + 12_345) for _ in range(3)]
    addresses = [capture.block_address(b) for b in old]

    def run():
        old.clear()

    ev, _, _ = capture_run(run)
    frees = ev["address"][ev["kind"] == KIND_FREE]
    assert np.isin(addresses, frees).all()


def test_raw_calls_without_the_gil_are_recorded_without_a_stack():
    import ctypes

    nogil = ctypes.CDLL(None)  # CDLL releases the GIL around the call
    withgil = ctypes.pythonapi  # PyDLL keeps it
    for lib in (nogil, withgil):
        lib.PyMem_RawMalloc.restype = ctypes.c_void_p
        lib.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
        lib.PyMem_RawFree.argtypes = [ctypes.c_void_p]

    def run():
        a = nogil.PyMem_RawMalloc(BASE + 13_001)
        b = withgil.PyMem_RawMalloc(BASE + 13_002)
        nogil.PyMem_RawFree(a)
        withgil.PyMem_RawFree(b)
        return a, b

    ev, _, (a, b) = capture_run(run)
    (ia,) = np.flatnonzero(ev["size"] == BASE + 13_001)
    (ib,) = np.flatnonzero(ev["size"] == BASE + 13_002)
    assert ev["domain"][ia] == ev["domain"][ib] == 0  # DOMAIN_RAW
    assert ev["address"][ia] == a and ev["address"][ib] == b
    assert ev["stack_id"][ia] == 0  # no GIL: no frame walk
    assert ev["stack_id"][ib] != 0
    for addr in (a, b):
        assert ((ev["kind"] == KIND_FREE) & (ev["address"] == addr)).sum() == 1


def test_full_buffers_drop_and_count_never_block():
    drain()
    pending_before = capture.stats()["pending_bytes"]  # threads other tests left alive
    capture.start(max_buffer_bytes=2 * 65536)
    try:
        junk = [str(i) for i in range(300_000)]  # far more than 128 KiB of records
        del junk
    finally:
        capture.stop()
    chunks, rare = drain()
    stats = rare["producer_stats"]
    assert stats["drops"][-1] > 0
    assert stats["buffer_high_water"][-1] <= max(2 * 65536, pending_before)
    assert len(decode_all(chunks)["kind"]) > 0
    # the drop counter is cumulative: a later start keeps counting from there
    assert capture.stats()["drops"] == stats["drops"][-1]


def test_threads_started_before_capture_are_traced():
    go, done = threading.Event(), threading.Event()
    ident = {}

    def early():
        go.wait(10)
        ident["tid"] = capture.thread_id()  # (asked while capture runs)
        blob = bytearray(BASE + 14_001)
        del blob
        done.set()

    t = threading.Thread(target=early)
    t.start()

    def run():
        go.set()
        done.wait(10)

    ev, _, _ = capture_run(run)
    t.join()
    hit = ev["size"] == BASE + 14_002
    assert hit.sum() == 1
    assert ev["tid"][hit][0] == ident["tid"]
