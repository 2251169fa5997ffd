"""Shared helpers of the broker, log and publisher tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from memscope.eventlog.log import open_log
from memscope.producer.synthetic import expected_totals


def ipc_address(tmp_path: Path, name: str = "b") -> str:
    """A short ipc:// address inside the test's temporary directory."""
    return f"ipc://{tmp_path}/{name}"


def run_synthetic(
    address: str,
    events: int,
    producers: int,
    chunk: int = 65536,
    rate: float = 0.0,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> subprocess.Popen[str]:
    """Start the synthetic producers' command line; returns the Popen (stdout: JSON lines)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memscope.producer.synthetic",
            "--address",
            address,
            "--events",
            str(events),
            "--producers",
            str(producers),
            "--chunk",
            str(chunk),
            "--rate",
            str(rate),
            "--timeout",
            str(timeout),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def producer_results(proc: subprocess.Popen[str], timeout: float) -> list[dict]:
    out, err = proc.communicate(timeout=timeout)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, err[-3000:]
    return results


def check_exactly_once(log_dir: Path, results: list[dict], events: int, chunk: int) -> None:
    """The log holds each synthetic producer's memory events exactly once."""
    log = open_log(log_dir)
    # Counted from the decoded events (the broker stores the producers' rec1 chunks as sent).
    memory = pa.Table.from_batches(list(log.memory_batches())).select(
        ["pid", "seq", "size", "address"]
    )
    assert log.chunk_events() == memory.num_rows, "memory events not stored as chunks"
    ingest = {row["producer"]: row for row in _last_ingest(log)}
    for result in results:
        mine = memory.filter(pc.equal(memory["pid"], result["pid"]))
        expected = expected_totals(0, result["index"], events, chunk)
        assert mine.num_rows == expected["events"] == events
        seq = mine["seq"].to_numpy()
        assert len(np.unique(seq)) == mine.num_rows, "an event landed twice"
        batch_seq = np.unique(seq >> 24)
        assert batch_seq.tolist() == list(range(result["last_seq"] + 1))
        assert int(pc.sum(mine["size"]).as_py()) == expected["size"]
        address_sum = int(mine["address"].to_numpy().sum(dtype=np.uint64))
        assert address_sum == expected["address"]
        row = ingest[result["producer"]]
        assert row["batches"] == result["last_seq"] + 1
        assert row["gaps"] == 0


def _last_ingest(log) -> list[dict]:
    rows = log.dataset("ingest").to_table().to_pylist()
    last: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r["ts_ns"]):
        last[row["producer"]] = row
    return list(last.values())


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
