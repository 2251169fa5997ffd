"""A full disk: the broker refuses batches and says so once; nothing is lost once space returns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from memscope.broker import start_embedded
from memscope.config import Settings
from memscope.eventlog import faults as _faults
from memscope.eventlog.log import LogWriter, open_log
from tests.broker_helpers import (
    check_exactly_once,
    ipc_address,
    producer_results,
    run_synthetic,
    wait_for,
)

EVENTS = 120_000
CHUNK = 4096
RATE = 40_000.0  # events/s per producer: ~3 s of sending, across the outage


def _writable(broker) -> bool:
    with broker.client() as client:
        return bool(client.ping()["log_writable"])


def _leftovers(log_dir: Path) -> list[str]:
    return [str(p) for p in log_dir.rglob("*.tmp")]


def _outage(tmp_path: Path, log_dir: Path, fill, free) -> None:
    """Two producers across an outage of the disk; every event lands exactly once."""
    broker = start_embedded(log_dir, bind=ipc_address(tmp_path))
    try:
        proc = run_synthetic(
            broker.address,
            EVENTS,
            producers=2,
            chunk=CHUNK,
            rate=RATE,
            env={"MEMSCOPE_SPOOL_DIR": str(tmp_path / "spool")},
        )
        time.sleep(0.5)
        fill()
        assert wait_for(lambda: not _writable(broker), 10), "the broker did not notice"
        with broker.client() as client:
            assert "cannot write the log" in client.ping()["log_error"]
        time.sleep(1.0)
        assert broker.alive()
        free()
        assert wait_for(lambda: _writable(broker), 10), "the broker did not resume"
        results = producer_results(proc, 120)
        with broker.client() as client:
            client.flush()
            refused = sum(p["refused"] for p in client.ingest())
    finally:
        broker.stop()
    assert refused > 0, "the outage refused nothing: it did not happen while sending"
    check_exactly_once(log_dir, results, EVENTS, CHUNK)
    log = open_log(log_dir)
    assert log.problems == []
    assert _leftovers(log_dir) == []
    said = (log_dir / "_broker" / "broker.log").read_text()
    assert said.count("cannot write the log") == 1, said[-2000:]
    assert "writable again" in said
    ingest = log.table("ingest").to_pylist()
    assert any(r["refused"] and "cannot write the log" in (r["problem"] or "") for r in ingest)


def test_injected_enospc_refuses_then_every_event_lands_once(tmp_path, monkeypatch):
    flag = tmp_path / "disk-full"
    monkeypatch.setenv(_faults.ENV, str(flag))  # the embedded broker inherits it
    _outage(tmp_path, tmp_path / "run" / "events", flag.touch, flag.unlink)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def test_a_real_full_tmpfs_refuses_then_every_event_lands_once(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "16m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount)")
    ballast = disk / "ballast"

    def fill() -> None:
        # every free block of the tmpfs (unbuffered: closing the file then writes nothing more)
        with open(ballast, "wb", buffering=0) as out:
            try:
                while True:
                    out.write(b"\0" * (1 << 16))
            except OSError:
                pass

    try:
        _outage(tmp_path, disk / "run" / "events", fill, ballast.unlink)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_manifest_write_on_a_full_disk_leaves_no_temporary(tmp_path, monkeypatch):
    flag = tmp_path / "disk-full"
    monkeypatch.setenv(_faults.ENV, str(flag))
    writer = LogWriter(tmp_path / "events", Settings())
    flag.touch()
    with pytest.raises(OSError):
        writer.flush()
    assert not (tmp_path / "events" / "manifest.json.tmp").exists()
    assert open_log(tmp_path / "events").manifest["log_id"] == writer.log_id


PROGRAM = """
import os, sys, time
import memscope
flag, returns = sys.argv[1], sys.argv[2] == "returns"
before = [bytearray(100) for _ in range(50)]
memscope.track_var(before)
time.sleep(0.8)                          # shipped and written
open(flag, "w").close()                 # the disk is full from here on
time.sleep(1.0)
during = [bytearray(100) for _ in range(50)]
memscope.track_var(during)
time.sleep(0.5)
if returns:
    os.unlink(flag)                      # ... and has room again
    time.sleep(1.0)
sys.exit(3)
"""


@pytest.mark.parametrize("space", ["returns", "stays full"])
def test_memscope_run_keeps_the_exit_status_and_says_it_once(tmp_path, space):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(PROGRAM))
    flag = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "run"
    env = {**os.environ, _faults.ENV: str(flag), "MEMSCOPE_SPOOL_DIR": str(tmp_path / "spool")}
    report = [] if space == "returns" else ["--no-report"]  # (the analysis is tested above)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "run",
            "--out",
            str(out),
            *report,
            str(script),
            str(flag),
            space.split()[0],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    names = open_log(out).table("variables").column("name").to_pylist()
    if space == "returns":
        assert sorted(names) == ["before", "during"]  # what came during the outage landed
        assert "cannot write the log" not in done.stderr
        assert (out / "snapshot_memory_analysis.json").is_file()
    else:
        said = [line for line in done.stderr.splitlines() if "cannot write the log" in line]
        assert len(said) == 1, done.stderr[-3000:]
        assert "refused batches are kept in" in said[0] and "memory events of" in said[0]
        assert names == ["before"] and "memory events of 1 processes" in said[0]
        assert list((tmp_path / "spool").glob("*.spool")), "the refused batches are not kept"
    assert _leftovers(out) == []


def test_a_broker_that_cannot_write_at_start_says_so_in_one_line(tmp_path):
    flag = tmp_path / "disk-full"
    flag.touch()
    env = {**os.environ, _faults.ENV: str(flag)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "broker",
            "--bind",
            ipc_address(tmp_path),
            "--log",
            str(tmp_path / "events"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "cannot write the log" in done.stderr and "No space left" in done.stderr
    assert _leftovers(tmp_path / "events") == []
