"""Publisher: spool while the broker is away, replay in order, fork, thread exclusion."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import types

import pytest

from memscope.broker import start_embedded
from memscope.config import Settings
from memscope.eventlog.log import open_log
from memscope.producer.publisher import Publisher, default_producer_id
from memscope.producer.synthetic import SyntheticSource, run_producer
from tests.broker_helpers import check_exactly_once, ipc_address

CHUNK = 4096


def _settings(tmp_path, **changes) -> Settings:
    return Settings().replace(
        send_timeout_s=0.2, flush_interval_s=0.05, spool_dir=str(tmp_path / "spool"), **changes
    )


@pytest.mark.timeout(60)
def test_spools_while_no_broker_then_replays_in_order(tmp_path):
    address = ipc_address(tmp_path)
    source = SyntheticSource(0, 20 * CHUNK, CHUNK)
    producer = default_producer_id()
    publisher = Publisher(address, producer, os.getpid(), source, _settings(tmp_path))
    publisher.start()
    for _ in range(10):
        publisher.flush(5)
    stats = publisher.stats()
    assert stats["unreachable"] and stats["spooled"] == 10 and stats["sent"] == 0
    spool = list((tmp_path / "spool").glob("*.spool"))
    assert len(spool) == 1 and spool[0].stat().st_size > 10 * CHUNK * 3  # rec1: >= 3 bytes a record
    broker = start_embedded(tmp_path / "events", bind=address)
    try:
        while not source.exhausted:
            publisher.flush(5)
        publisher.close(20)
    finally:
        assert broker.stop() == 0
    stats = publisher.stats()
    assert stats["unacked"] == 0 and stats["last_seq"] == 19 and not stats["unreachable"]
    assert not spool[0].exists()  # emptied and removed once everything was acknowledged
    result = {"producer": producer, "pid": os.getpid(), "index": 0, "last_seq": 19}
    check_exactly_once(tmp_path / "events", [result], 20 * CHUNK, CHUNK)
    memory = open_log(tmp_path / "events").dataset("memory").to_table(columns=["seq", "ts_ns"])
    ordered = memory.sort_by("seq")
    ts = ordered.column("ts_ns").to_numpy()
    assert (ts[1:] >= ts[:-1]).all()  # seq order is the producer's order after the replay


@pytest.mark.timeout(60)
def test_a_stopped_broker_makes_producers_wait_and_spool_never_drop(tmp_path):
    broker = start_embedded(tmp_path / "events", bind=ipc_address(tmp_path))
    try:
        os.kill(broker.pid, signal.SIGSTOP)
        thread_result: dict = {}
        worker = threading.Thread(
            target=lambda: thread_result.update(
                run_producer(
                    broker.address,
                    40 * CHUNK,
                    index=0,
                    chunk=CHUNK,
                    settings=_settings(tmp_path, send_hwm=2),
                    timeout=30,
                )
            )
        )
        worker.start()
        time.sleep(1.0)
        os.kill(broker.pid, signal.SIGCONT)
        worker.join(40)
    finally:
        os.kill(broker.pid, signal.SIGCONT)
        assert broker.stop() == 0
    assert thread_result["unacked"] == 0 and thread_result["spooled"] > 0
    check_exactly_once(tmp_path / "events", [thread_result], 40 * CHUNK, CHUNK)


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_forked_child_gets_its_own_producer_and_socket(tmp_path):
    broker = start_embedded(tmp_path / "events", bind=ipc_address(tmp_path))
    try:
        parent_source = SyntheticSource(0, 4 * CHUNK, CHUNK)
        parent_id = default_producer_id()
        publisher = Publisher(
            broker.address, parent_id, os.getpid(), parent_source, _settings(tmp_path)
        )
        publisher.start()
        publisher.flush(5)
        pid = os.fork()
        if pid == 0:  # the child: a new producer with its own events
            code = 1
            try:
                child_source = SyntheticSource(1, 3 * CHUNK, CHUNK)
                publisher._drain = child_source
                publisher.reset_after_fork(default_producer_id(), os.getpid())
                while not child_source.exhausted:
                    publisher.flush(5)
                publisher.close(20)
                code = 0 if publisher.stats()["unacked"] == 0 else 3
            finally:
                os._exit(code)
        while not parent_source.exhausted:
            publisher.flush(5)
        publisher.close(20)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        assert broker.stop() == 0
    memory = open_log(tmp_path / "events").dataset("memory").to_table()
    pids = memory.column("pid").to_pylist()
    by_pid = {p: pids.count(p) for p in (os.getpid(), pid)}
    assert by_pid == {os.getpid(): 4 * CHUNK, pid: 3 * CHUNK}
    assert publisher.stats()["last_seq"] == 3


def test_publisher_thread_asks_to_be_ignored_by_the_tracer(tmp_path, monkeypatch):
    calls: list[int] = []
    fake = types.ModuleType("memscope.producer.capture")
    fake.ignore_current_thread = lambda: calls.append(threading.get_ident())  # type: ignore
    monkeypatch.setitem(sys.modules, "memscope.producer.capture", fake)
    publisher = Publisher(ipc_address(tmp_path), "h:1:1", 1, lambda: ([], {}), _settings(tmp_path))
    publisher.start()
    publisher.flush(2)
    thread = publisher._thread
    publisher.close(1)
    assert thread is not None and calls == [thread.ident]
    assert calls[0] != threading.get_ident()


def test_large_drains_are_split_into_batches_of_at_most_batch_max_events(tmp_path):
    from memscope.producer.synthetic import memory_chunk
    from memscope.protocol.records import encode_cols1
    from memscope.protocol.wire import decode_envelope

    chunks = [encode_cols1(1, memory_chunk(0, 0, i, 3000)) for i in range(3)]
    rare = {"threads": {"tid": [1], "ts_ns": [1], "event": ["start"], "name": ["t"]}}
    drains = iter([(chunks, rare)])
    publisher = Publisher(
        ipc_address(tmp_path),
        "h:1:1",
        1,
        lambda: next(drains, ([], {})),
        _settings(tmp_path, batch_max_events=5000),
    )
    assert publisher.flush(1) == 2  # no thread: the caller's flush drains, packs, spools
    assert publisher.stats()["batches"] == 3 and publisher.stats()["events"] == 9000
    assert publisher.stats()["rows"] == 9001  # the memory events and one rare row
    frames = [publisher._backlog.payload(e) for e in publisher._backlog.entries]
    payloads = [decode_envelope(f[0], f[1:]) for f in frames]
    assert [e.n for e in payloads] == [3001, 3000, 3000] and payloads[0].rec
    assert [e.seq for e in payloads] == [0, 1, 2]
    publisher.close(0.5)


@pytest.mark.timeout(60)
def test_batches_left_in_the_spool_at_exit_are_replayed_later(tmp_path):
    from memscope.producer.spool import main as replay_main

    address = ipc_address(tmp_path)
    source = SyntheticSource(0, 6 * CHUNK, CHUNK)
    producer = default_producer_id()
    publisher = Publisher(address, producer, os.getpid(), source, _settings(tmp_path))
    while not source.exhausted:
        publisher.flush(0.3)
    publisher.close(0.3)  # the broker never came: everything stays spooled
    [spool] = (tmp_path / "spool").glob("*.spool")
    with open(spool, "ab") as handle:
        handle.write(b"\x10\x00\x00\x00torn")  # a record cut short by a crash
    broker = start_embedded(tmp_path / "events", bind=address)
    try:
        assert replay_main(["--address", address, "--timeout", "20", str(spool)]) == 0
        assert replay_main(["--address", address, "--timeout", "1", str(spool)]) == 1  # gone
    finally:
        assert broker.stop() == 0
    assert not spool.exists()
    result = {"producer": producer, "pid": os.getpid(), "index": 0, "last_seq": 5}
    check_exactly_once(tmp_path / "events", [result], 6 * CHUNK, CHUNK)


def test_split_batches_are_joined_into_one_frame_in_the_spool(tmp_path):
    from memscope.producer.backlog import Backlog
    from memscope.producer.spool import read_spool
    from memscope.producer.synthetic import memory_chunk
    from memscope.protocol.records import encode_rec1
    from memscope.protocol.wire import decode_envelope, encode_batch, encode_batch_frames

    chunk = encode_rec1(5, memory_chunk(0, 0, 0, 20_000))
    frames = encode_batch_frames("h:1:1", 1, 0, [chunk], {})
    assert len(frames) == 2
    backlog = Backlog(tmp_path / "p.spool")
    kept = backlog.add(0, 20_000, frames, to_disk=False)
    spooled = backlog.add(1, 20_000, frames, to_disk=True)
    assert backlog.payload(kept) is frames
    assert backlog.memory_bytes == sum(len(f) for f in frames)
    assert backlog.spill_unsent() == 1 and backlog.memory_bytes == 0
    one_frame = encode_batch("h:1:1", 1, 0, [chunk], {})
    assert backlog.payload(kept) == backlog.payload(spooled) == [one_frame]
    backlog.close()
    (replayed, again) = list(read_spool(tmp_path / "p.spool"))
    assert replayed == again == one_frame
    assert decode_envelope(replayed).mem[0]["data"] == chunk["data"]


class _TornSocket:
    """A PUSH socket whose connection goes away at frame ``fail_at`` of the next message."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.sent, self.position = fail_at, [], 0

    def send(self, data, flags=0, copy=True):
        import zmq

        if self.position == self.fail_at:
            self.fail_at = -1
            self.position = 0 if not flags & zmq.SNDMORE else self.position + 1
            raise zmq.Again()
        self.sent.append((bytes(data), bool(flags & zmq.SNDMORE)))
        self.position = self.position + 1 if flags & zmq.SNDMORE else 0


@pytest.mark.parametrize("fail_at", [0, 1, 2])
def test_a_batch_torn_mid_message_counts_as_not_sent(fail_at):
    """libzmq drops the rest of a message whose later frame failed, the next attempt's frames
    included, up to a last frame: send_frames ends such a message itself and says Again."""
    import zmq

    from memscope.producer.publisher import send_frames

    sock = _TornSocket(fail_at)
    with pytest.raises(zmq.Again):
        send_frames(sock, [b"envelope", b"data1", b"data2"])
    if fail_at == 0:
        assert sock.sent == []  # nothing queued: nothing to end
    elif fail_at == 1:  # frame 1 of 3 failed: an empty last frame ends the message
        assert sock.sent == [(b"envelope", True), (b"", False)]
    else:  # the last frame failed: the message is already ended
        assert sock.sent == [(b"envelope", True), (b"data1", True)]
    sock.sent.clear()
    send_frames(sock, [b"envelope", b"data1", b"data2"])  # the retry goes out whole
    assert sock.sent == [(b"envelope", True), (b"data1", True), (b"data2", False)]
