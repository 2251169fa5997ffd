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

from memscope.analyzers.registry import ANALYZERS, Analyzer, select
from memscope.analyzers.runner import run_all

__all__ = ["ANALYZERS", "Analyzer", "run_all", "select"]
