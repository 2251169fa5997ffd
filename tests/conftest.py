"""Fixtures every layer of the suite shares.

- ``sample_log_dir``: a temporary log written from :func:`memscope.analyzers.log_builder.sample_log`
  (every table, a few processes), for tests that read a log.
- ``ipc_address``: a private ``ipc://`` address in the test's temporary directory.
- ``broker_factory``: brokers running on threads of the test process, stopped at the end
  (integration tests only: a broker opens sockets).

Helpers that are not fixtures live beside this file (``broker_helpers``, ``api_support``,
``tracer_util``, ``native_util``); ``programs/`` holds the programs the tests trace and
``data/`` the committed samples. ``unit/`` starts no process and opens no socket (its own
``conftest.py`` enforces it); ``integration/`` does both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker_helpers import ipc_address as _ipc_address


@pytest.fixture
def sample_log_dir(tmp_path: Path) -> Path:
    """The ``events/`` directory of a log holding the builder's sample (see module doc)."""
    from memscope.analyzers.log_builder import sample_log, write_log

    events = tmp_path / "run" / "events"
    write_log(sample_log().tables(), events)
    return events


@pytest.fixture
def ipc_address(tmp_path: Path) -> str:
    """A private ``ipc://`` address for a broker (its control and feed sockets go beside)."""
    return _ipc_address(tmp_path)


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make(settings=None, log_dir=None, address=None)``: a broker on a thread, with the
    analyzers handed in (``stats``, retention); every one is stopped when the test ends."""
    from memscope.analyzers.broker_analysis import log_analysis
    from memscope.broker.server import Broker
    from memscope.config import Settings

    running: list[tuple[Any, threading.Thread]] = []

    def make(settings: Any = None, log_dir: Path | None = None, address: str | None = None) -> Any:
        n = len(running)
        broker = Broker(
            log_dir or tmp_path / f"events{n or ''}",
            address or _ipc_address(tmp_path, f"b{n}"),
            settings or Settings(),
            analysis=log_analysis(),
        )
        thread = threading.Thread(target=broker.run, daemon=True, name=f"broker-{n}")
        thread.start()
        running.append((broker, thread))
        return broker

    yield make
    for broker, _ in running:
        broker.request_stop()
    for _, thread in running:
        thread.join(20)
        assert not thread.is_alive(), "a broker did not stop within 20 s"
