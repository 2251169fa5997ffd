"""Traced by tests/integration/test_api_tracing.py under `memscope run`: prints what it did."""

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import memscope

THREADS = 16
BLOCKS = 50
BLOCK = 65_536


def inner_alloc():
    return bytearray(3_000_001)  # LINE:inner


def outer_alloc():
    return inner_alloc()  # LINE:outer


def child_work():
    keep = bytearray(123_457)
    return len(keep)


def thread_work(i, ready, release, keep):
    keep[i] = [bytearray(BLOCK + i) for _ in range(BLOCKS)]
    ready.wait()
    release.wait()


def main():
    memscope.init()  # already done by memscope run's bootstrap: must be a no-op
    out = {"pid": os.getpid(), "ppid": os.getppid()}

    data = {"a": [1, 2, 3]}
    memscope.track_var(data)
    with memscope.scope("load"):
        rows = [1, "x"]
        memscope.track_var(rows)
        nested = {"inner": rows}
        memscope.track_var(nested)
    big = bytearray(1_000_000)
    memscope.track_var(big, name="big")
    t0 = time.monotonic_ns()
    del big
    t1 = time.monotonic_ns()
    out["death_window"] = [t0, t1]
    # Empty CPython's list, dict and 2-tuple free lists, so that a dying one would be kept
    # for reuse instead of freed -- unless memscope makes its death a free.
    hold = ([[] for _ in range(100)], [{} for _ in range(100)], [(i, -i) for i in range(2100)])
    numbers = [1, 2, 3]
    memscope.track_var(numbers)
    table = {"a": 1}
    memscope.track_var(table)
    pair = (len(out), "x")
    memscope.track_var(pair)
    t2 = time.monotonic_ns()
    del numbers, table, pair
    t3 = time.monotonic_ns()
    out["recycled_window"] = [t2, t3]
    del hold
    kept = outer_alloc()

    ready = threading.Barrier(THREADS + 1)
    release = threading.Event()
    keep = {}
    threads = [
        threading.Thread(
            target=thread_work, args=(i, ready, release, keep), name=f"alloc-{i}", daemon=True
        )
        for i in range(THREADS)
    ]
    for t in threads:
        t.start()
    ready.wait()
    try:
        stats = memscope.get_global_tracker().get_stats()  # threads alive: named in the log
    finally:
        release.set()
    out["active_with_threads"] = stats.active_memory
    out["threads"] = {t.name: t.ident for t in threads}
    for t in threads:
        t.join()

    pid = os.fork()
    if pid == 0:
        keep_child = bytearray(222_222)
        del keep_child
        memscope.shutdown()
        os._exit(0)
    os.waitpid(pid, 0)
    out["os_fork"] = pid
    for method in ("fork", "spawn", "forkserver"):
        process = multiprocessing.get_context(method).Process(target=child_work)
        process.start()
        process.join()
        out[method] = process.pid
        out[f"{method}_exit"] = process.exitcode
    done = subprocess.run(
        [sys.executable, "-c", "import os; x = bytearray(333_333); print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    out["subprocess"] = int(done.stdout)
    out["kept"] = len(kept)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
