"""Forks, threads and thread churn around memscope.init(); exits 0 if nothing hangs."""

import json
import os
import sys
import threading
import time

import memscope  # importing does nothing; init() comes after the threads started

FORKS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
stop = threading.Event()


traced = threading.Event()


def allocate_forever():
    while not stop.is_set():
        junk = [bytearray(100) for _ in range(100)]
        if traced.is_set():  # memscope's own locks are busy while the main thread forks
            with memscope.scope("busy"):
                memscope.track_var(junk)
        del junk
        time.sleep(0.001)


def churn():
    while not stop.is_set():
        t = threading.Thread(target=lambda: bytearray(1000))
        t.start()
        t.join()
        time.sleep(0.001)


# Threads exist before init.
busy = [threading.Thread(target=allocate_forever, daemon=True) for _ in range(3)]
for t in busy:
    t.start()

memscope.init()
traced.set()
churner = threading.Thread(target=churn, daemon=True)
churner.start()

children = []
for i in range(FORKS):
    pid = os.fork()
    if pid == 0:
        blocks = [bytearray(1000 + i) for _ in range(100)]
        del blocks
        memscope.shutdown()
        os._exit(0)
    children.append(pid)
    time.sleep(0.01)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
stop.set()
for t in busy + [churner]:
    t.join()
print(json.dumps({"pid": os.getpid(), "children": children, "codes": codes}))
