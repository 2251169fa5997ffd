"""memscope: memory analysis for Python programs.

Tracing is event-sourced: the traced process (the *producer*) ships allocator events in
batches over ZeroMQ to a *broker* that appends them to an Arrow log; *analyzers* turn the log
into six JSON files; *exporters* draw SVG reports and an HTML dashboard from those.

Importing memscope does nothing else: no hooks, threads or sockets until :func:`init`.

PYTEST_DONT_REWRITE: pytest marks the packages of entry-point plugins (memscope's pytest plugin)
for assertion rewriting and warns when one is already imported, as it is under
``memscope run -m pytest``; memscope's modules hold no test assertions to rewrite.
"""

from __future__ import annotations

import importlib

from memscope.version import __version__

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing would cost every user


# Public name -> module that defines it. Resolved on first use so that `import memscope`
# stays cheap (pyarrow, zmq and the C extension load only when tracing starts).
_LAZY = {
    "init": "memscope.api.tracker",
    "shutdown": "memscope.api.tracker",
    "track_var": "memscope.api.tracker",
    "scope": "memscope.api.tracker",
    "get_global_tracker": "memscope.api.tracker",
    "Tracker": "memscope.api.tracker",
    "MemoryStats": "memscope.api.tracker",
    "AllocationInfo": "memscope.api.tracker",
    "TypeUsage": "memscope.api.tracker",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from memscope.api.tracker import (  # noqa: F401
        AllocationInfo,
        MemoryStats,
        Tracker,
        TypeUsage,
        get_global_tracker,
        init,
        scope,
        shutdown,
        track_var,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext memscope``: registers the ``%%memscope`` cell magic.

    See :mod:`memscope.integrations.notebook`.
    """
    from memscope.integrations.notebook import load_ipython_extension as load

    load(ipython)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
