"""Allocate and free known sizes; print what memscope (or tracemalloc) measured, as JSON."""

import json
import sys

SIZE = 256 * 1024
COUNT = 200


def workload(measure):
    blocks = [bytearray(SIZE) for _ in range(COUNT)]
    during = measure()
    del blocks
    return during


def with_memscope():
    import memscope

    memscope.init()
    tracker = memscope.get_global_tracker()
    before = tracker.get_stats()
    during = workload(tracker.get_stats)
    after = tracker.get_stats()
    return {
        "allocated": SIZE * COUNT,
        "before": before.active_memory,
        "during": during.active_memory,
        "after": after.active_memory,
        "peak": after.peak_memory,
        "allocations": after.total_allocations - before.total_allocations,
    }


def with_tracemalloc():
    import tracemalloc

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    workload(lambda: None)
    return {"before": before, "peak": tracemalloc.get_traced_memory()[1]}


if __name__ == "__main__":
    result = with_memscope() if sys.argv[1] == "memscope" else with_tracemalloc()
    print(json.dumps(result))
