"""Control socket, live feed, flush timer and stats op of a broker running in a thread."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import types

import pytest
import zmq

from memscope.analyzers.broker_analysis import log_analysis
from memscope.broker.analysis import NO_ANALYSIS
from memscope.broker.server import Broker
from memscope.config import Settings
from memscope.eventlog.log import open_log
from memscope.producer.synthetic import run_producer
from memscope.protocol.addresses import control_address, free_tcp_address
from memscope.protocol.control_client import BrokerClient, BrokerError
from tests.broker_helpers import ipc_address, wait_for


@pytest.fixture
def broker(broker_factory):
    return broker_factory(Settings().replace(log_flush_interval_s=0.1))


@pytest.mark.timeout(60)
def test_feed_flush_wait_ingest_and_live_log(broker, tmp_path):
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"log")
    sub.connect(broker.feed_address)
    client = BrokerClient(broker.control_address, timeout_s=10)
    try:
        result = run_producer(broker.bind, 50_000, chunk=10_000, timeout=30)
        client.wait(result["producer"], result["last_seq"], timeout_s=5)
        with pytest.raises(BrokerError, match="did not arrive in time"):
            client.wait(result["producer"], result["last_seq"] + 1, timeout_s=0.2)
        [row] = client.ingest()
        assert row["events"] == result["events"] == 50_000  # memory events only
        assert row["rows"] == result["rows"] > 50_000  # plus the rare rows
        assert row["batches"] == result["batches"]
        assert row["gaps"] == 0 and row["duplicates"] == 0
        summary = client.flush()
        assert summary["rows"]["memory"] == 50_000
        assert sub.poll(5000)
        topic, body = sub.recv_multipart()
        feed = json.loads(body)
        assert topic == b"log" and feed["topic"] == "log" and feed["log_id"] == summary["log_id"]
        # The log is current while the broker runs: readable, live, with ingest rows.
        assert wait_for(lambda: open_log(tmp_path).dataset("ingest").count_rows() > 0, 5)
        live = open_log(tmp_path)
        assert live.live and live.problems == []
        assert live.dataset("memory").count_rows() == 50_000
        with pytest.raises(BrokerError, match="unknown op"):
            client.request("frobnicate")
    finally:
        client.close()
        sub.close(linger=0)
        context.term()


@pytest.mark.timeout(60)
def test_a_request_can_be_sent_now_and_its_reply_taken_later(broker):
    """begin/collect: what the publisher uses so that it never waits on a busy broker."""
    result = run_producer(broker.bind, 5_000, chunk=1_000, timeout=30)
    client = BrokerClient(broker.control_address, timeout_s=10)
    try:
        with pytest.raises(BrokerError, match="no request waits"):
            client.collect()
        client.begin("acked", producer=result["producer"])
        assert client.pending
        with pytest.raises(BrokerError, match="still waits for its reply"):
            client.begin("ping")
        reply = None
        deadline = time.monotonic() + 10
        while reply is None and time.monotonic() < deadline:
            reply = client.collect()  # only looks: never blocks
            time.sleep(0.01)
        assert reply is not None and not client.pending
        assert reply["seq"] == result["last_seq"] and reply["boot"]
        # an answer nobody waits for any more: the socket is replaced and works again
        client.begin("ping")
        client.abandon()
        assert not client.pending
        assert client.ping(timeout_s=5)["boot"] == reply["boot"]
        client.begin("frobnicate")
        with pytest.raises(BrokerError, match="unknown op"):
            client.collect(5.0)
        assert not client.pending
    finally:
        client.close()


@pytest.mark.timeout(60)
def test_stats_op_waits_for_the_batch_and_uses_the_analyzers(broker, monkeypatch):
    seen = {}

    class FakeLiveStats:  # follow.live_stats_for(log): the state kept per log
        def __init__(self, log):
            self.log = log

        def stats(self, pid):
            seen["pid"], seen["rows"] = pid, open_log(self.log).dataset("memory").count_rows()
            seen["closed"] = True
            return {"active_allocations": seen["rows"]}

        def seed_figures(self, pid):
            return {"leaked_allocations": seen["rows"]}

        def warm(self):
            pass

    follow = types.ModuleType("memscope.analyzers.follow")
    follow.live_stats_for = FakeLiveStats  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "memscope.analyzers.follow", follow)
    # without the running totals (they answer a full-mode process: see the next test)
    monkeypatch.setitem(sys.modules, "memscope.analyzers.live_totals", None)
    result = run_producer(broker.bind, 30_000, chunk=10_000, timeout=30)
    with BrokerClient(broker.control_address) as client:
        stats = client.stats(result["pid"], result["producer"], result["last_seq"], timeout_s=5)
        assert stats == {"active_allocations": 30_000, "leaked_allocations": 30_000}
        assert seen == {"pid": result["pid"], "rows": 30_000, "closed": True}
        monkeypatch.setattr(broker, "analysis", NO_ANALYSIS)  # a broker started without them
        with pytest.raises(BrokerError, match="started without the analyzers"):
            client.stats(result["pid"], result["producer"], 0, timeout_s=5)


@pytest.mark.timeout(60)
def test_stats_of_a_full_mode_process_come_from_totals_folded_as_batches_land(broker):
    from memscope.analyzers.memstats import process_stats
    from memscope.analyzers.runner import connect_analyzed
    from memscope.analyzers.seed_api import seed_figures

    with BrokerClient(broker.control_address) as client:
        for i, events in enumerate((20_000, 30_000)):  # the second folded as it is written
            result = run_producer(broker.bind, events, index=i, chunk=5_000, timeout=30)
            reply = client.request(
                "stats",
                35.0,
                pid=result["pid"],
                producer=result["producer"],
                seq=result["last_seq"],
                timeout_s=5,
            )
            stats = reply["stats"]
            assert broker.control.totals.active
            assert "events" in reply  # answered by the running totals
            client.request("flush")
            con = connect_analyzed(broker.writer.path)
            expected = process_stats(con, result["pid"])
            seeds = {
                k: stats.pop(k) for k in ("peak_allocations", "leaked_allocations", "leaked_memory")
            }
            assert stats == expected
            assert stats["total_allocations"] > 0
            # MemoryStats' fields so far: the log's blocks at the peak, and leaks = alive now
            assert seeds["peak_allocations"] == seed_figures(con, result["pid"])["peak_allocations"]
            assert seeds["leaked_allocations"] == expected["active_allocations"]
            assert seeds["leaked_memory"] == expected["active_memory"]


def test_sigterm_flushes_and_closes(tmp_path):
    from memscope.broker import start_embedded

    broker = start_embedded(tmp_path / "events", bind=ipc_address(tmp_path))
    result = run_producer(broker.address, 20_000, chunk=5_000, timeout=30)
    assert broker.stop() == 0  # SIGTERM
    log = open_log(tmp_path)
    assert log.manifest["writer"]["state"] == "closed" and log.problems == []
    assert all(s.closed for s in log.segments("memory"))
    [row] = [
        r
        for r in log.dataset("ingest").to_table().to_pylist()
        if r["producer"] == result["producer"]
    ][-1:]
    assert row["events"] == result["events"]


@pytest.mark.timeout(60)
def test_segments_rotate_by_age_while_serving(tmp_path):
    settings = Settings().replace(log_flush_interval_s=0.05, segment_max_age_s=0.1)
    instance = Broker(tmp_path / "events", ipc_address(tmp_path), settings, analysis=log_analysis())
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    try:
        results = []
        for i in range(3):  # a pause longer than the maximum age between producers
            results.append(run_producer(instance.bind, 20_000, index=i, chunk=5_000, timeout=30))
            time.sleep(0.3)
    finally:
        instance.request_stop()
        thread.join(20)
    log = open_log(tmp_path)
    segments = log.segments("memory_chunks")  # rec1 chunks, stored as sent
    assert len(segments) >= 2 and all(s.closed for s in segments)
    assert log.dataset("memory").count_rows() == 60_000
    assert sum(r["events"] for r in results) == 60_000  # memory events only
    assert sum(r["rows"] for r in results) > 60_000  # plus the rare rows


@pytest.mark.timeout(60)
def test_cli_broker_serves_tcp_loopback_and_stops_on_sigint(tmp_path):
    address = free_tcp_address()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memscope",
            "broker",
            "--bind",
            address,
            "--log",
            str(tmp_path / "events"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with BrokerClient(control_address(address)) as client:
            assert wait_for(lambda: _pings(client), timeout=30)
        result = run_producer(address, 10_000, chunk=5_000, timeout=30)
        assert result["unacked"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert address in out
    log = open_log(tmp_path)
    assert log.manifest["writer"]["state"] == "closed"
    assert log.dataset("memory").count_rows() == 10_000


def _pings(client: BrokerClient) -> bool:
    try:
        client.ping(timeout_s=0.5)
    except BrokerError:
        return False
    return True
