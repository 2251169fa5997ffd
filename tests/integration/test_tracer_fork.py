"""fork: the child starts with empty buffers and only its own thread; nothing deadlocks."""

import os
import threading
import time

import numpy as np
from tracer_util import decode_all, drain

from memscope.producer import capture

MARK = 5_550_001


def _wait(pid, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} hung")


def _child_check():
    """In the child: 0 if the capture state is right, else a distinct failure code."""
    chunks, rare = capture.drain()
    ev = decode_all(chunks)
    if (ev["size"] == MARK + 1).any():
        return 3  # the parent's pending events leaked into the child
    mine = bytearray(MARK + 10)
    chunks, rare = capture.drain()
    ev = decode_all(chunks)
    hit = np.flatnonzero(ev["size"] == MARK + 11)
    if len(hit) != 1 or set(ev["tid"].tolist()) - {capture.thread_id()}:
        return 4
    # the child re-sends every stack node, so its own log can resolve its stacks
    if int(ev["stack_id"][hit[0]]) not in rare.get("stacks", {}).get("stack_id", []):
        return 5
    del mine
    return 0


def test_child_starts_empty_and_traces_itself():
    drain()
    capture.start()
    try:
        pending = bytearray(MARK)  # recorded in the parent, not drained before fork
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child_check()
            finally:
                os._exit(code)
        assert _wait(pid) == 0
        chunks, _ = drain()
        assert (decode_all(chunks)["size"] == MARK + 1).sum() == 1  # the parent keeps its own
        del pending
    finally:
        capture.stop()
        drain()


def test_fork_storm_with_threads_allocating():
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            junk = [bytearray(64) for _ in range(100)]
            del junk

    drain()
    capture.start()
    threads = [threading.Thread(target=churn) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(25):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _child_check()
                finally:
                    os._exit(code)
            assert _wait(pid) == 0
            drain()
    finally:
        stop.set()
        for t in threads:
            t.join()
        capture.stop()
        drain()


def test_after_fork_child_is_idempotent_in_the_parent_process_shape():
    drain()
    capture.start()
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                capture.after_fork_child()
                capture.after_fork_child()
                code = _child_check()
            finally:
                os._exit(code)
        assert _wait(pid) == 0
    finally:
        capture.stop()
        drain()
