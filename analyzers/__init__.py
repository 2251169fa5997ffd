"""Analyzers: independent workers that turn an event log into the six JSON files.

Each analyzer is one module with ``run(con, options) -> dict`` that reads the log's analysis
state (:mod:`memscope.analyzers.state`) through the DuckDB views of
:mod:`memscope.analyzers.views` and writes ``<base>_<file kind>.json``. They are registered
in :data:`ANALYZERS` (:mod:`memscope.analyzers.registry`: kind -> :class:`Analyzer`, callable
as ``run``); :func:`run_all` runs a selection of them over one log
(:mod:`memscope.analyzers.runner`).

Imports inside the package go one way: ``fold`` <- ``state`` <- ``stacks``, ``views`` <-
``_common`` <- ``memstats`` <- the analyzer modules <- ``registry`` <- ``runner`` <-
``follow`` <- the command modules; ``blocks`` (the raw-event block matching of ``memscope
query``) sits beside ``views``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memscope.analyzers.registry import ANALYZERS, Analyzer, select
    from memscope.analyzers.runner import run_all

__all__ = ["ANALYZERS", "Analyzer", "run_all", "select"]

# The names above load on first use: the broker imports a few modules of this package (its
# running totals) and should not pay for DuckDB and the analyzers until it needs them.
_HOME = {"ANALYZERS": "registry", "Analyzer": "registry", "select": "registry", "run_all": "runner"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f"memscope.analyzers.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'memscope.analyzers' has no attribute {name!r}")
