"""Forks from threads whose functions then return in the child (the issue's program), with
grandchildren forked from threads of those children; prints what ``threading`` sees.

Usage: fork_from_threads.py [THREADS]. Every process exits; the parent prints
``threads <active_count> <names>`` and the children's exit statuses.
"""

import json
import os
import sys
import threading

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 1
codes: list[int] = []
lock = threading.Lock()


def grandchild(mine: list[int]) -> None:
    pid = os.fork()
    if pid == 0:
        bytearray(2000)
        return  # the grandchild's thread returns: the grandchild ends
    mine.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))


def forker(depth: int) -> None:
    pid = os.fork()
    if pid == 0:
        bytearray(1000)
        if depth > 0:
            mine: list[int] = []
            inner = threading.Thread(target=grandchild, args=(mine,))
            inner.start()
            inner.join()
            if mine != [0]:
                os._exit(7)
        return  # the child's thread returns: the child ends with status 0
    status = os.waitpid(pid, 0)[1]
    with lock:
        codes.append(os.waitstatus_to_exitcode(status))


workers = [threading.Thread(target=forker, args=(1 if i % 2 else 0,)) for i in range(THREADS)]
for t in workers:
    t.start()
for t in workers:
    t.join()
names = sorted(t.name for t in threading.enumerate())
print(json.dumps({"threads": threading.active_count(), "names": names, "codes": sorted(codes)}))
