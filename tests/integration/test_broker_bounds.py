"""A broker's state is bounded: many producer ids, an idle broker, a quick stop."""

from __future__ import annotations

import json
import os
import signal
import time

import zmq

from memscope.broker import start_embedded
from memscope.broker.ingest import MAX_PRODUCERS, Ingest, SeqSet
from memscope.protocol.addresses import free_tcp_address
from memscope.protocol.wire import encode_batch

FAKE_PRODUCERS = 100_000


def test_the_producer_table_forgets_the_idle_and_the_least_recent_beyond_its_limit():
    ingest = Ingest(max_producers=3, ttl_s=60.0)
    for i in range(5):
        state = ingest.get(f"p{i}", i)
        state.batches = i
    ingest.get("p0", 0)  # p0 active again: p1 and p2 are now the least recent
    assert ingest.trim() == 2
    assert list(ingest.producers) == ["p3", "p4", "p0"]
    rows = ingest.rows()  # the forgotten ones' last counters come out first
    assert rows.column("producer").to_pylist()[:2] == ["p1", "p2"]
    assert ingest.unwritten == 0
    later = time.monotonic() + 61.0
    assert ingest.trim(now=later, keep={"p4"}) == 2  # expired, but p4 has pending batches
    assert list(ingest.producers) == ["p4"] and ingest.forgotten == 4


def test_seqset_tells_which_value_would_start_a_new_range():
    seqs = SeqSet([[0, 4], [10, 12]])
    assert [v for v in range(16) if seqs.splits(v)] == [6, 7, 8, 14, 15]
    assert seqs.range_count() == 2
    seqs.add(7)
    assert seqs.range_count() == 3 and not seqs.splits(8) and seqs.splits(15)


def _tcp_broker(log_dir):
    """A broker on loopback TCP; another port if one was taken between the probe and the bind
    (an ephemeral port of some client, on a busy machine)."""
    for attempt in range(5):
        try:
            return start_embedded(log_dir, bind=free_tcp_address())
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) or attempt == 4:
                raise
    raise AssertionError("unreachable")


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):  # the peak, not only what is left
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_100k_fake_producers_bounded_memory_idle_cpu_and_quick_stop(tmp_path):
    log_dir = tmp_path / "events"
    broker = _tcp_broker(log_dir)
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.linger = 60_000
    push.connect(broker.address)
    try:
        for i in range(FAKE_PRODUCERS):  # valid empty batches, one per producer id
            push.send(encode_batch(f"fake:{i}:{i}", i % 60_000 + 1, 0, [], {}))
        with broker.client(timeout_s=120) as client:
            last = FAKE_PRODUCERS - 1
            client.wait(f"fake:{last}:{last}", 0, timeout_s=120)
            client.flush()
            known = client.ingest()
        assert len(known) <= MAX_PRODUCERS
        time.sleep(1.5)  # let the last timer round pass
        cpu, wall = _cpu_seconds(broker.pid), time.monotonic()
        time.sleep(3.0)
        idle = (_cpu_seconds(broker.pid) - cpu) / (time.monotonic() - wall)
        peak = _rss_bytes(broker.pid)
        manifest = json.loads((log_dir / "manifest.json").read_text())
        started = time.monotonic()
        broker.process.send_signal(signal.SIGTERM)
        broker.process.wait(30)
        stopped = time.monotonic() - started
    finally:
        push.close()
        context.term()
        broker.stop()
    print(f"peak RSS {peak / 1e6:.0f} MB, idle CPU {100 * idle:.2f} %, stop {stopped:.2f} s")
    assert peak <= 200e6
    assert idle < 0.02
    assert stopped < 2.0
    assert len(manifest["state"]["producers"]) <= MAX_PRODUCERS
    assert broker.process.returncode == 0


def test_a_producer_scattering_its_seqs_is_refused_beyond_the_holes_limit(tmp_path):
    from memscope.broker.ingest import MAX_RANGES

    broker = _tcp_broker(tmp_path / "events")
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.linger = 10_000
    push.connect(broker.address)
    try:
        for seq in range(0, 2 * (MAX_RANGES + 10), 2):  # every other seq: a hole each
            push.send(encode_batch("scatter:1:1", 77, seq, [], {}))
        with broker.client(timeout_s=60) as client:
            assert wait_for_counter(client, "scatter:1:1", MAX_RANGES + 10)
            (row,) = [p for p in client.ingest() if p["producer"] == "scatter:1:1"]
    finally:
        push.close()
        context.term()
        broker.stop()
    # a bound, not an exact count: batches still pending in a group count as holes too
    assert MAX_RANGES - 256 <= row["batches"] <= MAX_RANGES
    assert row["batches"] + row["rejected"] == MAX_RANGES + 10
    assert "holes in its batch sequence" in row["problem"]


def wait_for_counter(client, producer: str, total: int, timeout: float = 60.0) -> bool:
    """Until the producer's landed plus rejected batches reach ``total``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [p for p in client.ingest() if p["producer"] == producer]
        if rows and rows[0]["batches"] + rows[0]["rejected"] >= total:
            return True
        time.sleep(0.1)
    return False
