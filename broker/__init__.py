"""The broker: receives batches from many producers and appends them to an Arrow event log.

Public entry points (imported on first use): :func:`start_embedded` / :class:`EmbeddedBroker`
(a broker in a child process), :class:`~memscope.protocol.control_client.BrokerClient` (its control
socket), :func:`~memscope.eventlog.log.open_log` and :class:`~memscope.eventlog.log.LogWriter`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "start_embedded": "memscope.broker.embedded",
    "EmbeddedBroker": "memscope.broker.embedded",
    "BrokerClient": "memscope.protocol.control_client",
    "open_log": "memscope.eventlog.log",
    "LogWriter": "memscope.eventlog.log",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memscope.broker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
