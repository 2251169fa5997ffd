"""Short threads run one after the other (CPython reuses their idents), each tracking a
variable. Usage: thread_reuse.py [THREADS]; prints how many distinct idents they had."""

import json
import sys
import threading

import memscope

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000


def work(i: int) -> None:
    data = [i] * 10
    memscope.track_var(data, name=f"v{i}")


threads = []
for i in range(THREADS):
    t = threading.Thread(target=work, args=(i,), name=f"short-{i}")
    t.start()
    t.join()
    threads.append(t.ident)
print(json.dumps({"threads": THREADS, "idents": len(set(threads))}))
