"""Rows of the rare tables the Python side produces, gathered into the wire's columnar form.

Columns are those of :mod:`memscope.protocol.log_schema` without ``pid`` (the broker takes it from
the envelope); they are spelled out here so that the traced process never imports pyarrow
(``tests/unit/test_api_units.py`` checks they match the schema).

:class:`RowBuffer` is a lock-free queue (``deque.append`` and ``popleft`` are atomic), so any
thread may add rows while the publisher thread takes them, and a ``fork`` can never inherit it
locked.
"""

from __future__ import annotations

import collections
from typing import Any

#: Table -> its columns, in schema order, for the tables this module's users produce.
COLUMNS: dict[str, tuple[str, ...]] = {
    "processes": (
        "ts_ns",
        "event",
        "ppid",
        "host",
        "producer",
        "argv",
        "executable",
        "python",
        "mode",
        "sample_bytes",
        "exit_code",
    ),
    "threads": ("tid", "ts_ns", "event", "native_id", "name"),
    "variables": (
        "tid",
        "ts_ns",
        "var_id",
        "name",
        "type_name",
        "object_id",
        "address",
        "size",
        "deep_size",
        "scope",
        "scope_id",
        "stack_id",
        "contains",
    ),
    "scopes": ("tid", "ts_ns", "event", "scope_id", "parent_id", "name"),
}

Columnar = dict[str, dict[str, list[Any]]]


class RowBuffer:
    """A thread-safe, fork-safe queue of ``(table, row)`` taken as columnar tables."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()

    def add(self, table: str, **values: Any) -> None:
        """Queue one row; every column of ``table`` must be given (``None`` for null)."""
        columns = COLUMNS[table]
        if len(values) != len(columns):
            missing = sorted(set(columns) ^ set(values))
            raise ValueError(f"{table} row: wrong columns {missing}")
        self._rows.append((table, tuple(values[c] for c in columns)))

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        """Forget every queued row (a forked child drops its parent's)."""
        self._rows.clear()

    def take(self) -> Columnar:
        """Remove the queued rows and return them as ``{table: {column: [values]}}``."""
        out: Columnar = {}
        rows = self._rows
        while True:
            try:
                table, values = rows.popleft()
            except IndexError:
                break
            columns = out.get(table)
            if columns is None:
                columns = out[table] = {name: [] for name in COLUMNS[table]}
            for name, value in zip(COLUMNS[table], values, strict=True):
                columns[name].append(value)
        return out


def merge(into: Columnar, other: Columnar) -> Columnar:
    """Append ``other``'s tables to ``into`` (column by column) and return ``into``."""
    for table, columns in other.items():
        target = into.get(table)
        if target is None:
            into[table] = {name: list(values) for name, values in columns.items()}
            continue
        if set(target) != set(columns):
            raise ValueError(f"table {table!r}: cannot merge different columns")
        for name, values in columns.items():
            target[name].extend(values)
    return into


def complete_producer_stats(rare: Columnar, batches: int, spooled: int) -> None:
    """Fill the publisher's counters into ``rare``'s ``producer_stats`` rows, in place.

    The tracer's drain measures the events, bytes, drops and buffer of the process; only the
    publisher knows ``batches`` (packed so far, the one carrying the row included) and
    ``spooled`` (written to its spool file so far). Columns a producer set itself are kept.
    """
    stats = rare.get("producer_stats")
    if not stats:
        return
    rows = len(next(iter(stats.values())))
    stats.setdefault("batches", [batches] * rows)
    stats.setdefault("spooled", [spooled] * rows)
