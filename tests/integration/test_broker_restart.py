"""The broker SIGKILLed mid-run and restarted: producers spool and replay; exactly once."""

from __future__ import annotations

import time

import pytest

from memscope.broker import start_embedded
from memscope.eventlog.log import open_log
from tests.broker_helpers import (
    check_exactly_once,
    ipc_address,
    producer_results,
    run_synthetic,
    wait_for,
)

EVENTS = 400_000
CHUNK = 8192


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sigkilled_broker_restarts_and_log_holds_every_event_once(tmp_path):
    log_dir = tmp_path / "events"
    address = ipc_address(tmp_path)
    broker = start_embedded(log_dir, bind=address)
    env = {"MEMSCOPE_SEND_TIMEOUT_S": "0.2", "MEMSCOPE_SPOOL_DIR": str(tmp_path / "spool")}
    proc = run_synthetic(address, EVENTS, producers=4, chunk=CHUNK, rate=200_000, env=env)
    try:
        with broker.client() as client:  # kill once a fifth of the events landed
            assert wait_for(
                lambda: sum(p["events"] for p in client.ingest()) > 4 * EVENTS // 5, timeout=60
            )
        broker.process.kill()  # SIGKILL: no flush, no footer, no final manifest
        broker.process.wait()
        killed_at = open_log(log_dir).dataset("memory").count_rows()
        time.sleep(0.8)  # producers keep producing and spool meanwhile
        broker = start_embedded(log_dir, bind=address)
        results = producer_results(proc, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        assert broker.stop() == 0
    print(killed_at, [(r["spooled"], r["resent"], r["batches"]) for r in results])
    assert 0 < killed_at < 4 * EVENTS, "the kill must hit the middle of the run"
    assert sum(r["spooled"] + r["resent"] for r in results) > 0, "nobody had to replay"
    assert all(r["unacked"] == 0 for r in results)
    check_exactly_once(log_dir, results, EVENTS, CHUNK)
    log = open_log(log_dir)
    assert log.problems == []
    notes = (log_dir / "_broker" / "broker.log").read_text()
    assert "unclean stop" in notes  # the restarted broker closed the cut-short segments
