"""Traced by ``memscope.init()`` (the environment names the broker and the arena directory):
waits a second (the publisher's first cycle ships the start row), allocates COUNT 4 KiB
buffers, says "ready" and sleeps until killed.

Usage: arena_child.py COUNT
"""

import sys
import time

import memscope

memscope.init()
time.sleep(1.0)
kept = [bytearray(4096) for _ in range(int(sys.argv[1]))]
print("ready", flush=True)
time.sleep(120)
