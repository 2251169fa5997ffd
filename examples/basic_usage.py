"""memscope's basic example: tracked variables, scopes, threads, a numpy array.

Run it traced, with the reports written at the end:

    memscope run examples/basic_usage.py      # or: make demo

or on its own, ``python examples/basic_usage.py --export``: it then starts tracing itself
and writes the reports through the tracker into the working directory.
"""

import sys
import threading

import numpy as np

import memscope


class User:
    def __init__(self, name, tags):
        self.name = name
        self.tags = tags


@memscope.scope("load_users")
def load_users(count):
    users = {f"user{i}": User(f"user{i}", [i, i + 1]) for i in range(count)}
    memscope.track_var(users)
    return users


def build_index(users):
    with memscope.scope("build_index"):
        index = {name: len(user.tags) for name, user in users.items()}
        memscope.track_var(index)
        return index


def worker(n, results):
    rows = [bytearray(1024) for _ in range(n)]
    memscope.track_var(rows)
    results.append(len(rows))


def main():
    memscope.init()  # under `memscope run` tracing has already started: this does nothing
    my_vec = [1, 2, 3, 4, 5]
    memscope.track_var(my_vec)
    my_string = "Hello, memscope!" * 10
    memscope.track_var(my_string)
    matrix = np.zeros((256, 256))
    memscope.track_var(matrix)

    users = load_users(2_000)
    index = build_index(users)
    del users  # its death is the free of its memory, visible in the lifecycle timeline

    results = []
    threads = [threading.Thread(target=worker, args=(200, results), name=f"worker-{i}")
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    stats = memscope.get_global_tracker().get_stats()
    print(f"indexed {len(index)} users in {len(results)} threads; "
          f"active {stats.active_memory:,} bytes, peak {stats.peak_memory:,} bytes")

    if "--export" in sys.argv:
        tracker = memscope.get_global_tracker()
        print(tracker.export_memory_analysis("memory_analysis.svg"))
        print(tracker.export_lifecycle_timeline("lifecycle_timeline.svg"))
        print(tracker.export_to_json("memory_snapshot.json"))
        print(tracker.export_to_html("dashboard.html"))


if __name__ == "__main__":
    main()
