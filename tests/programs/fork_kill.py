"""Forks N children, each of which forks one grandchild; every one of them allocates COUNT
2 KiB buffers (from two threads) and then SIGKILLs itself. Prints {"killed": [pids]}.

Usage: fork_kill.py N COUNT
"""

import json
import os
import signal
import sys
import threading

n, count = int(sys.argv[1]), int(sys.argv[2])


def work_and_die(report_fd: int) -> None:
    kept = []

    def half() -> None:
        kept.extend(bytearray(2048) for _ in range(count // 2))

    helper = threading.Thread(target=half)
    helper.start()
    half()
    helper.join()
    os.write(report_fd, f"{os.getpid()}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


read_end, write_end = os.pipe()
children = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        grandchild = os.fork()
        if grandchild == 0:
            work_and_die(write_end)
        os.waitpid(grandchild, 0)
        work_and_die(write_end)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
os.close(write_end)
with os.fdopen(read_end) as reports:
    killed = [int(line) for line in reports]
print(json.dumps({"killed": sorted(killed)}))
