"""Memory stress: threads allocate, resize and free many objects of many sizes at once.

    memscope run examples/memory_stress.py [--size N]     (make run-memory-stress)
    python examples/memory_stress.py [--size 10]

The counterpart of memscope-rs's ``memory_stress`` example. Four worker threads each run
rounds of churn (short-lived strings, lists, dicts and bytearrays of sizes from 16 B to
64 KiB, grown and shrunk with realloc), keep a bounded cache of survivors, and free half of it
at the end; ``--size N`` runs N times as many rounds. It prints the exact totals (and, on a
standalone run, writes the reports); ``memscope stats`` and ``memscope summary`` on the run
directory show where the memory went.
"""

from __future__ import annotations

import random
import threading

from _example import finish, parse_args, print_stats

import memscope

WORKERS = 4
ROUNDS = 2_000
CACHE = 500


def churn(rng: random.Random, rounds: int, cache: list[object]) -> int:
    """``rounds`` rounds of short-lived allocations; a few survive in ``cache``."""
    made = 0
    for i in range(rounds):
        size = 16 << rng.randrange(13)  # 16 B .. 64 KiB
        buffer = bytearray(size)
        buffer.extend(b"x" * (size // 2))  # a realloc that grows it
        del buffer[size // 4 :]  # and one that shrinks it
        words = [str(i * k) for k in range(rng.randrange(1, 64))]
        table = {w: len(w) for w in words}
        made += 3 + len(words)
        if rng.random() < 0.1:
            cache.append((bytes(buffer), table))
            if len(cache) > CACHE:
                cache.pop(0)
    return made


def worker(index: int, rounds: int, caches: list[list[object]], made: list[int]) -> None:
    """One thread's churn, with its own random stream (the run is repeatable)."""
    cache: list[object] = []
    made[index] = churn(random.Random(index), rounds, cache)
    caches[index] = cache[: len(cache) // 2]  # half of the survivors outlive the thread


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    memscope.init()
    caches: list[list[object]] = [[] for _ in range(WORKERS)]
    made = [0] * WORKERS
    threads = [
        threading.Thread(
            target=worker, name=f"stress-{i}", args=(i, ROUNDS * args.size, caches, made)
        )
        for i in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    memscope.track_var(caches)
    print(
        f"{WORKERS} threads made {sum(made):,} objects; "
        f"{sum(len(c) for c in caches)} survivors kept"
    )
    print_stats("Memory stress")
    finish("memory_stress", args)


if __name__ == "__main__":
    main()
