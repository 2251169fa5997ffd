"""An embedded broker whose owner dies without stopping it closes its log and exits."""

import os
import signal
import subprocess
import sys
import time

from memscope.eventlog.log import open_log

OWNER = """
import sys, time
from memscope.broker import start_embedded
broker = start_embedded(sys.argv[1])
print(broker.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it has exited all the same
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_broker_outlives_a_killed_owner_only_briefly(tmp_path):
    log = tmp_path / "events"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(log)], stdout=subprocess.PIPE, text=True
    )
    try:
        broker_pid = int(owner.stdout.readline())
        assert _alive(broker_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 60
        while _alive(broker_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(broker_pid), "the orphaned broker kept running"
    finally:
        owner.kill()
        owner.wait()
    reader = open_log(log)
    assert reader.problems == [], reader.problems


def test_embedded_broker_keeps_blas_to_one_thread(tmp_path, monkeypatch):
    """The broker imports numpy (through pyarrow) but must not start a BLAS thread per core,
    whose spinning competes with the traced program; a user's own setting is kept."""
    from memscope.broker import start_embedded

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    broker = start_embedded(tmp_path / "events")
    try:
        with open(f"/proc/{broker.pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    finally:
        broker.stop()
    assert env[b"OPENBLAS_NUM_THREADS"] == b"1"
    assert env[b"OMP_NUM_THREADS"] == b"3"
