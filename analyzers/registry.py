"""The analyzer registry: which analyzers exist, the file each writes, how to pick some."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from memscope.analyzers.common import AnalyzerOptions


@dataclass(frozen=True)
class Analyzer:
    """One registered analyzer: its kind, the file it writes and the module that runs it."""

    kind: str
    file_kind: str
    module: str

    @property
    def run(self) -> Callable[[duckdb.DuckDBPyConnection, AnalyzerOptions], dict[str, Any]]:
        """The module's ``run(con, options) -> dict``."""
        run: Callable[..., dict[str, Any]] = importlib.import_module(self.module).run
        return run

    def __call__(self, con: duckdb.DuckDBPyConnection, options: AnalyzerOptions) -> dict:
        """Run the analyzer (``ANALYZERS[kind](con, options)``)."""
        return self.run(con, options)

    def file_name(self, base: str = "snapshot") -> str:
        """``<base>_<file kind>.json``."""
        return f"{base}_{self.file_kind}.json"


#: The six analyzers, in report order. Add one by adding a line here.
ANALYZERS: dict[str, Analyzer] = {
    a.kind: a
    for a in (
        Analyzer("memory", "memory_analysis", "memscope.analyzers.memory"),
        Analyzer("lifecycle", "lifetime", "memscope.analyzers.lifecycle"),
        Analyzer("security", "security_violations", "memscope.analyzers.security"),
        Analyzer("complex_types", "complex_types", "memscope.analyzers.complex_types"),
        Analyzer("performance", "performance", "memscope.analyzers.performance"),
        Analyzer("ffi", "unsafe_ffi", "memscope.analyzers.ffi"),
    )
}


def select(only: Iterable[str] | None) -> list[Analyzer]:
    """The analyzers named in ``only`` (kinds or file kinds), in registry order; all if None."""
    if not only:
        return list(ANALYZERS.values())
    wanted = set()
    by_name = {
        **{a.kind: a for a in ANALYZERS.values()},
        **{a.file_kind: a for a in ANALYZERS.values()},
    }
    for name in only:
        key = name.strip().lower().replace("-", "_")
        if key not in by_name:
            raise ValueError(f"unknown analyzer {name!r}; choose from {', '.join(ANALYZERS)}")
        wanted.add(by_name[key].kind)
    return [a for a in ANALYZERS.values() if a.kind in wanted]
