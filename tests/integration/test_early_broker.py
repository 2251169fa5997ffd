"""The pytest plugin's broker, started on a thread: ready, stopped, or a clear failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from memscope.config import Settings
from memscope.integrations.early_broker import EarlyBroker


def test_it_starts_in_the_background_and_stops(tmp_path: Path) -> None:
    early = EarlyBroker(tmp_path / "events", Settings())
    assert early.address.startswith("ipc://")  # known at once, before the broker answers
    broker = early.ready()
    assert broker.address == early.address and broker.alive()
    with broker.client() as client:
        assert Path(client.ping()["log"]).resolve() == (tmp_path / "events").resolve()
    socket_dir = Path(early.address.removeprefix("ipc://")).parent
    early.stop()
    assert not broker.alive() and not socket_dir.exists()
    assert (tmp_path / "events" / "manifest.json").is_file()


def test_a_broker_that_cannot_start_says_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    early = EarlyBroker(tmp_path / "file" / "events", Settings())
    with pytest.raises(RuntimeError, match="the embedded broker did not start: .*file"):
        early.ready()
    early.stop()
