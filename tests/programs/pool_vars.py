"""``with Pool(4)`` of 8 short tasks, each tracking a 1 MiB bytearray; leaving the ``with``
terminates the workers (SIGTERM). Usage: pool_vars.py fork|spawn"""

import json
import multiprocessing as mp
import os
import sys

import memscope


def task(i: int) -> int:
    block = bytearray(1 << 20)
    memscope.track_var(block, name=f"task{i}")
    return os.getpid()


if __name__ == "__main__":
    context = mp.get_context(sys.argv[1] if len(sys.argv) > 1 else "fork")
    with context.Pool(4) as pool:
        pids = pool.map(task, range(8), chunksize=1)
    print(json.dumps({"pid": os.getpid(), "workers": sorted(set(pids))}))
