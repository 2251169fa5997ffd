"""8 producer processes x 1,000,000 events into one broker: every event exactly once."""

from __future__ import annotations

import pytest

from memscope.broker import start_embedded
from memscope.eventlog.log import open_log
from tests.broker_helpers import check_exactly_once, ipc_address, producer_results, run_synthetic

EVENTS = 1_000_000
CHUNK = 65536


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_eight_producers_million_events_each_land_exactly_once(tmp_path):
    log_dir = tmp_path / "events"
    broker = start_embedded(log_dir, bind=ipc_address(tmp_path))
    try:
        proc = run_synthetic(broker.address, EVENTS, producers=8, chunk=CHUNK)
        results = producer_results(proc, timeout=150)
    finally:
        assert broker.stop() == 0
    assert len(results) == 8
    assert all(r["unacked"] == 0 for r in results)
    check_exactly_once(log_dir, results, EVENTS, CHUNK)
    log = open_log(log_dir)
    assert log.problems == []
    assert log.dataset("processes").count_rows() == 16  # a start and an exit row each
    assert log.manifest["writer"]["state"] == "closed"
