"""The traced program's exit status, recorded in the log by ``memscope run``.

A process cannot see its own exit status (``atexit`` handlers run before it is final), so
its ``processes`` ``exit`` row carries a null ``exit_code``. ``memscope run`` reaps the
program and sends one more ``exit`` row for it, as its own small producer
(``host:pid:start_ns:run``): ``exit_code`` is the status as ``subprocess`` reports it (the
exit code, or ``-N`` when signal N killed it) and ``ts_ns`` is 1 ns after the program's own
exit row (when it was reaped, if it died without one). Readers take the latest ``exit`` row
of a pid (``memscope.analyzers.views``), so this one completes the process.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import zmq

from memscope.protocol.wire import encode_batch


def record_exit_status(
    address: str,
    client: Any,
    pid: int,
    returncode: int,
    ended_ns: int,
    mode: str,
    timeout_s: float = 30.0,
) -> None:
    """Send the program's exit row to the broker at ``address``; wait until it is in the log."""
    host = socket.gethostname()
    producer = f"{host}:{os.getpid()}:{time.time_ns()}:run"
    row: dict[str, list[Any]] = {
        "ts_ns": [ended_ns],
        "event": ["exit"],
        "ppid": [os.getpid()],
        "host": [host],
        "producer": [producer],
        "argv": [None],
        "executable": [None],
        "python": [None],
        "mode": [mode],
        "sample_bytes": [None],
        "exit_code": [returncode],
    }
    context = zmq.Context()
    try:
        push = context.socket(zmq.PUSH)
        push.linger = int(timeout_s * 1000)
        push.connect(address)
        push.send(encode_batch(producer, pid, 0, [], {"processes": row}))
        push.close()
        client.wait(producer, 0, timeout_s=timeout_s)
    finally:
        context.term()
