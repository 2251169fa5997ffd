"""The unit layer's rule, enforced: a unit test starts no process and opens no socket.

Anything that does belongs in ``tests/integration/``. Threads, files and the tracer's
in-process capture are fine.
"""

from __future__ import annotations

import _posixsubprocess
import os
import socket
import subprocess

import pytest

_WHY = "unit tests start no process and open no socket: this one belongs in tests/integration"


def _refuse(*args: object, **kwargs: object) -> None:
    raise RuntimeError(_WHY)


_socket_init = socket.socket.__init__


def _wrap_only(
    self: socket.socket,
    family: int = -1,
    type: int = -1,
    proto: int = -1,
    fileno: int | None = None,
) -> None:
    """Wrapping a descriptor (``socketpair``, asyncio's self-pipe) is fine; a new socket is not."""
    if fileno is None:
        raise RuntimeError(_WHY)
    _socket_init(self, family, type, proto, fileno)


@pytest.fixture(autouse=True)
def _no_processes_or_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse)
    monkeypatch.setattr(os, "fork", _refuse)
    monkeypatch.setattr(os, "posix_spawn", _refuse)
    monkeypatch.setattr(os, "posix_spawnp", _refuse)
    monkeypatch.setattr(os, "forkpty", _refuse)
    monkeypatch.setattr(os, "system", _refuse)
    monkeypatch.setattr(_posixsubprocess, "fork_exec", _refuse)  # multiprocessing's spawn
    monkeypatch.setattr(socket.socket, "__init__", _wrap_only)
    try:
        import zmq
    except ImportError:  # pragma: no cover
        return
    monkeypatch.setattr(zmq.Context, "socket", _refuse)
