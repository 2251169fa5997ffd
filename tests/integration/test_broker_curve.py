"""CURVE: unauthenticated producers never land; non-loopback binds need keys."""

from __future__ import annotations

import shutil

import pytest

from memscope.broker import start_embedded
from memscope.broker.server import Broker, BrokerConfigError
from memscope.commands.main import main
from memscope.config import Settings
from memscope.eventlog.log import open_log
from memscope.producer.synthetic import run_producer
from memscope.protocol.addresses import free_tcp_address, is_loopback


def _keys(tmp_path):
    keys = tmp_path / "keys"
    assert main(["keys", str(keys)]) == 0
    assert main(["keys", str(keys), "--name", "good"]) == 0
    assert main(["keys", str(keys), "--name", "stranger"]) == 0
    assert main(["keys", str(keys)]) == 2  # never overwrites
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(keys / "good.key", allowed / "good.key")
    return keys, allowed


@pytest.mark.timeout(120)
def test_unauthenticated_producers_never_land(tmp_path):
    keys, allowed = _keys(tmp_path)
    server = Settings().replace(
        curve_server_secret_key=str(keys / "broker.key_secret"),
        curve_authorized_clients=str(allowed),
    )
    log_dir = tmp_path / "events"
    broker = start_embedded(log_dir, bind=free_tcp_address(), settings=server)
    quick = Settings().replace(send_timeout_s=0.2)
    try:
        plain = run_producer(broker.address, 5000, index=1, chunk=1000, settings=quick, timeout=1.5)
        stranger = run_producer(
            broker.address,
            5000,
            index=2,
            chunk=1000,
            timeout=1.5,
            settings=quick.replace(
                curve_server_public_key=str(keys / "broker.key"),
                curve_client_secret_key=str(keys / "stranger.key_secret"),
            ),
        )
        good = run_producer(
            broker.address,
            5000,
            index=3,
            chunk=1000,
            timeout=30,
            settings=quick.replace(
                curve_server_public_key=str(keys / "broker.key"),
                curve_client_secret_key=str(keys / "good.key_secret"),
            ),
        )
    finally:
        assert broker.stop() == 0
    assert plain["unacked"] == plain["batches"] > 0
    assert stranger["unacked"] == stranger["batches"] > 0
    assert good["unacked"] == 0
    memory = open_log(log_dir).dataset("memory").to_table()
    assert set(memory.column("pid").to_pylist()) == {good["pid"]}
    assert memory.num_rows == 5000


def test_non_loopback_bind_without_keys_is_refused(tmp_path, capsys):
    with pytest.raises(BrokerConfigError, match="without CURVE keys"):
        Broker(tmp_path / "events", "tcp://0.0.0.0:5599", Settings())
    assert not (tmp_path / "events").exists()  # refused before touching anything
    code = main(["broker", "--bind", "tcp://*:5599", "--log", str(tmp_path / "x")])
    assert code == 2 and "memscope keys" in capsys.readouterr().err


def test_loopback_classification():
    assert is_loopback("tcp://127.0.0.1:1") and is_loopback("tcp://[::1]:1")
    assert is_loopback("ipc:///tmp/x") and is_loopback("tcp://localhost:9")
    assert not is_loopback("tcp://0.0.0.0:1") and not is_loopback("tcp://*:1")
    assert not is_loopback("tcp://10.1.2.3:1") and not is_loopback("tcp://eth0:1")


def test_unwritable_log_and_busy_address_are_clear_errors(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["broker", "--bind", f"ipc://{tmp_path}/a", "--log", str(blocker / "events")])
    assert code == 2 and "cannot write the log" in capsys.readouterr().err
    address = free_tcp_address()
    first = Broker(tmp_path / "one", address, Settings())
    try:
        with pytest.raises(BrokerConfigError, match="cannot start the broker on"):
            Broker(tmp_path / "two", address, Settings())
    finally:
        first.close()
