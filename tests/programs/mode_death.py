"""Tracks a bytearray and a list, deletes both between two timestamps (any capture mode)."""

import json
import time

import memscope

memscope.init()
big = bytearray(1_000_000)
memscope.track_var(big)
numbers = [1, 2, 3]
memscope.track_var(numbers)
t0 = time.monotonic_ns()
del big, numbers
t1 = time.monotonic_ns()
print(json.dumps([t0, t1]))
