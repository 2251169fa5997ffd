"""Allocates up to 200,000 1 KiB buffers, writing how many so far to COUNTFILE as it goes,
then dies mid-run: ``exit`` (os._exit(3)), ``kill`` (SIGKILL) or ``segv`` (a segfault).

Usage: crash_alloc.py exit|kill|segv COUNTFILE [DIE_AT]
"""

import ctypes
import os
import signal
import sys

how, count_file = sys.argv[1], sys.argv[2]
die_at = int(sys.argv[3]) if len(sys.argv) > 3 else 120_000
fd = os.open(count_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
kept = []
for i in range(1, 200_001):
    kept.append(bytearray(1024))
    if i % 1000 == 0 or i == die_at:
        os.pwrite(fd, f"{i:>8}".encode(), 0)  # the count, before dying: all of it was made
    if i == die_at:
        if how == "exit":
            os._exit(3)
        elif how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            ctypes.string_at(0)
