"""Concurrent threads: each worker thread allocates and tracks its own data.

    memscope run examples/concurrent_threads.py
    python examples/concurrent_threads.py [--size 10]

The counterpart of memscope-rs's concurrency example. Every allocation carries the id of the
thread that made it, and threads keep their names (``worker-0`` ...), so the performance
report breaks allocations down per thread and ``memscope query RUN "select * from threads"``
lists them.
"""

from __future__ import annotations

import threading
import time

from _example import finish, parse_args, print_stats

import memscope

WORKERS = 4


def worker(
    index: int,
    shared_config: tuple[str, ...],
    size: int,
    results: list[int],
    barrier: threading.Barrier,
) -> None:
    """Build this thread's data, track it, and hand a result back."""
    thread_data = [index] * (10_000 * size)  # one list per thread, index repeated
    memscope.track_var(thread_data)  # recorded with this thread's id

    # Per-thread work in a named scope: scopes are per thread too.
    with memscope.scope(f"worker-{index} processing"):
        words = [f"{shared_config[index % len(shared_config)]}-{i}" for i in range(2000 * size)]
        memscope.track_var(words)
        results[index] = sum(len(w) for w in words) + len(thread_data)

    # Stay alive until every worker is done: memscope notices threads (and their names) when
    # it flushes, every 0.2 s by default (later on a busy machine); a thread that lives
    # shorter is still traced, but keeps no name in the threads table.
    barrier.wait()
    time.sleep(0.5)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    memscope.init()

    shared_config = ("alpha", "beta", "gamma")
    memscope.track_var(shared_config)

    results = [0] * WORKERS
    barrier = threading.Barrier(WORKERS)
    threads = [
        threading.Thread(
            target=worker, name=f"worker-{i}", args=(i, shared_config, args.size, results, barrier)
        )
        for i in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{WORKERS} workers finished; results: {results}")

    print_stats("Cross-thread memory usage")
    finish("concurrent", args)


if __name__ == "__main__":
    main()
