"""``producer_stats.batches`` and ``spooled`` come from the publisher, never left null."""

from __future__ import annotations

import time

from memscope.broker import start_embedded
from memscope.config import Settings
from memscope.eventlog.log import open_log
from memscope.producer.publisher import Publisher
from memscope.producer.rows import complete_producer_stats
from tests.broker_helpers import ipc_address


def test_complete_producer_stats_fills_only_what_is_missing():
    rare = {"producer_stats": {"ts_ns": [1, 2], "events": [5, 6]}, "frames": {"frame_id": [1]}}
    complete_producer_stats(rare, batches=4, spooled=2)
    assert rare["producer_stats"]["batches"] == [4, 4]
    assert rare["producer_stats"]["spooled"] == [2, 2]
    assert "batches" not in rare["frames"]
    own = {"producer_stats": {"ts_ns": [1], "batches": [9]}}
    complete_producer_stats(own, batches=4, spooled=0)
    assert own["producer_stats"]["batches"] == [9] and own["producer_stats"]["spooled"] == [0]


def test_the_log_gets_the_publishers_batch_and_spool_counts(tmp_path):
    broker = start_embedded(tmp_path / "events", bind=ipc_address(tmp_path))
    drains = []

    def drain():  # what the tracer's drain gives: no batches, no spooled
        drains.append(1)
        return [], {
            "producer_stats": {
                "ts_ns": [time.monotonic_ns()],
                "events": [len(drains)],
                "bytes": [0],
                "drops": [0],
                "buffer_high_water": [0],
            }
        }

    settings = Settings().replace(spool_dir=str(tmp_path / "spool"))
    publisher = Publisher(broker.address, "stats:1:1", 4321, drain, settings)
    try:
        for _ in range(3):
            publisher.flush(10)
        publisher.close(10)
        counters = publisher.stats()
    finally:
        broker.stop()
    rows = open_log(tmp_path / "events").table("producer_stats").to_pylist()
    assert len(rows) == counters["batches"] >= 3
    assert [r["batches"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(r["spooled"] is not None for r in rows)
    assert rows[-1]["spooled"] == counters["spooled"]
