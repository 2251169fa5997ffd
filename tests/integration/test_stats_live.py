"""``get_stats`` while a program allocates: the running totals equal the log's own figures.

A traced program allocates without pause into a broker run by the test; stats requests
(the control op ``Tracker.get_stats`` uses) are answered from the broker's running totals,
each covering the log's first ``events`` memory rows. Folding exactly those rows with the
full fold (what ``memscope stats`` computes for a full-mode process) gives the same figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from api_support import clean_env

from memscope.analyzers._fold import Fold
from memscope.analyzers.broker_analysis import log_analysis
from memscope.analyzers.live_totals import full_mode_figures
from memscope.broker.server import Broker
from memscope.config import Settings
from memscope.eventlog.chunks import decode_chunk_batches
from memscope.eventlog.log import open_log
from memscope.protocol.control_client import BrokerClient
from memscope.protocol.log_schema import MEMORY
from tests.broker_helpers import ipc_address

PROGRAM = """
import json, os, sys, time
import memscope
memscope.init()
print(json.dumps({"pid": os.getpid()}), flush=True)
keep, i, until = [], 0, time.monotonic() + 60
answers = []
while time.monotonic() < until and not (
        i % 10_000 == 0 and len(answers) >= 2 and os.path.exists(sys.argv[1])):
    i += 1
    x = [i, i]
    if i % 50 == 0:
        keep.append(x)
    if i % 200_000 == 0:
        answers.append(memscope.get_global_tracker().get_stats().total_allocations)
print(json.dumps({"answers": answers}), flush=True)
"""


def _memory(log_dir) -> dict[str, np.ndarray]:
    """The log's memory rows, in log order."""
    rows = open_log(log_dir).dataset("memory_chunks").to_table().to_batches()
    batches = list(decode_chunk_batches(rows))
    return {n: np.concatenate([b.column(n).to_numpy() for b in batches]) for n in MEMORY.names}


def _prefix_figures(memory: dict[str, np.ndarray], pid: int, events: int) -> dict:
    """The full fold's figures of ``pid`` over the log's first ``events`` memory rows."""
    columns = {n: values[:events] for n, values in memory.items()}
    order = np.argsort(columns["ts_ns"], kind="stable")
    fold = Fold()
    fold.feed(*(columns[n][order] for n in MEMORY.names))
    table = fold.export(["processes"])["processes"]
    (i,) = np.flatnonzero(table["pid"] == pid)
    return full_mode_figures({k: int(v[i]) for k, v in table.items() if v.dtype.kind in "iu"})


SEED_KEYS = ("peak_allocations", "leaked_allocations", "leaked_memory")


@pytest.mark.timeout(120)
def test_stats_while_allocating_equal_the_logs_figures_at_that_point(tmp_path):
    broker = Broker(tmp_path / "events", ipc_address(tmp_path), Settings(), analysis=log_analysis())
    thread = threading.Thread(target=broker.run, daemon=True)
    thread.start()
    script = tmp_path / "work.py"
    script.write_text(PROGRAM)
    stop = tmp_path / "stop"  # the program allocates until this file exists
    child = subprocess.Popen(
        [sys.executable, str(script), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(MEMSCOPE_BROKER_ADDRESS=broker.bind),
    )
    replies = []
    try:
        assert child.stdout is not None
        pid = json.loads(child.stdout.readline())["pid"]
        with BrokerClient(broker.control_address, timeout_s=30) as client:
            while child.poll() is None and len(replies) < 5:
                reply = client.request("stats", 60.0, pid=pid, producer="", seq=-1)
                # (answered by the running totals once the process's first rows landed)
                if reply["stats"]["total_allocations"] and "events" in reply:
                    replies.append(reply)
                time.sleep(0.2)
        stop.touch()
        answers = json.loads(child.stdout.readline())["answers"]
        assert child.wait(60) == 0
        with BrokerClient(broker.control_address, timeout_s=30) as client:
            client.request("flush")
    finally:
        if child.poll() is None:
            child.kill()
        broker.request_stop()
        thread.join(20)
    assert len(replies) >= 3 and answers  # asked while the program allocated
    counts = [r["events"] for r in replies]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    memory = _memory(tmp_path / "events")
    for reply in replies:
        stats = dict(reply["stats"])
        seeds = {k: stats.pop(k) for k in SEED_KEYS}  # MemoryStats' fields so far
        expected = _prefix_figures(memory, pid, reply["events"])
        assert stats == expected
        assert seeds["leaked_allocations"] == expected["active_allocations"]
        assert seeds["leaked_memory"] == expected["active_memory"]
        assert 0 < seeds["peak_allocations"] <= expected["total_allocations"]
    assert answers == sorted(answers) and answers[-1] > 0
