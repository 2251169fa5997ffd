"""Timestamps of ``memscope run``'s steps after the program ends, for profiling.

With ``MEMSCOPE_TIMINGS=1`` in the environment, :func:`mark` writes one line
``memscope-timing <CLOCK_MONOTONIC ns> <pid> <step>`` to stderr per step (the supervisor's and
the SVG renderer's); ``bench/bench_exit.py --timings`` lines them up against the program's
exit. Without it, :func:`mark` does nothing.
"""

from __future__ import annotations

import atexit
import os
import sys
import time

ENV = "MEMSCOPE_TIMINGS"
_ON = os.environ.get(ENV, "") not in ("", "0")


def mark(step: str) -> None:
    """Note that ``step`` has just ended (when timings are on)."""
    if _ON:
        sys.stderr.write(f"memscope-timing {time.monotonic_ns()} {os.getpid()} {step}\n")
        sys.stderr.flush()


if _ON:
    atexit.register(mark, "interpreter exiting")
