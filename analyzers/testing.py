"""Build small event logs by hand: the testing source for analyzers, exporters and benches.

:class:`LogBuilder` collects rows for each log table and hands them out as Arrow tables
with exactly the schemas of :mod:`memscope.broker.schema`, ready for
:func:`memscope.analyzers.views.connect_tables` or a ``LogWriter``::

    b = LogBuilder()
    b.process(pid=10, ts_ns=0, argv=["app.py"])
    site = b.stack(10, [("main", "app.py", 3), ("load", "app.py", 9)])
    b.alloc(10, ts_ns=5, address=0x1000, size=64, stack_id=site)
    b.free(10, ts_ns=9, address=0x1000)
    con = connect_tables(b.tables())

Every helper appends rows; nothing is inferred. ``seq`` is assigned per pid in call order,
as the broker assigns it per producer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from memscope.broker.schema import TABLES
from memscope.producer.wire import (
    DOMAIN_OBJ,
    KIND_ALLOC,
    KIND_CALLOC,
    KIND_FREE,
    KIND_REALLOC,
)

Frame = tuple[str, str, int]


class LogBuilder:
    """Rows for every log table, appended by small helpers."""

    def __init__(self) -> None:
        self._rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._seq: dict[int, int] = defaultdict(int)
        self._frames: dict[tuple[int, Frame], int] = {}
        self._nodes: dict[tuple[int, int, int], int] = {}
        self._var_ids = 0

    # -- memory events -------------------------------------------------------------------
    def _memory(self, pid: int, **row: Any) -> None:
        row.setdefault("tid", 1)
        row.setdefault("old_address", 0)
        row.setdefault("stack_id", 0)
        row.setdefault("domain", DOMAIN_OBJ)
        row["seq"] = self._seq[pid]
        self._seq[pid] += 1
        self._rows["memory"].append({"pid": pid, **row})

    def alloc(
        self, pid: int, ts_ns: int, address: int, size: int, *, calloc: bool = False, **kw: Any
    ) -> None:
        """An allocation of ``size`` bytes at ``address``."""
        kind = KIND_CALLOC if calloc else KIND_ALLOC
        self._memory(pid, ts_ns=ts_ns, kind=kind, address=address, size=size, **kw)

    def free(self, pid: int, ts_ns: int, address: int, **kw: Any) -> None:
        """A free of the block at ``address``."""
        self._memory(pid, ts_ns=ts_ns, kind=KIND_FREE, address=address, size=0, **kw)

    def realloc(
        self, pid: int, ts_ns: int, old_address: int, address: int, size: int, **kw: Any
    ) -> None:
        """A realloc: the block at ``old_address`` ends, one of ``size`` at ``address`` starts."""
        self._memory(
            pid, ts_ns=ts_ns, kind=KIND_REALLOC, address=address, old_address=old_address,
            size=size, **kw,
        )

    # -- rare tables ---------------------------------------------------------------------
    def process(
        self,
        pid: int,
        ts_ns: int,
        *,
        ppid: int = 1,
        host: str = "testhost",
        argv: Sequence[str] = ("app.py",),
        mode: str = "full",
        exit_ts_ns: int | None = None,
        exit_code: int = 0,
    ) -> None:
        """A process start row and, with ``exit_ts_ns``, its exit row."""
        base = {
            "pid": pid, "ppid": ppid, "host": host, "producer": f"{host}:{pid}:{ts_ns}",
            "argv": list(argv), "executable": "/usr/bin/python3", "python": "3.11.7",
            "mode": mode, "sample_bytes": None,
        }
        self._rows["processes"].append({**base, "ts_ns": ts_ns, "event": "start",
                                        "exit_code": None})
        if exit_ts_ns is not None:
            self._rows["processes"].append({**base, "ts_ns": exit_ts_ns, "event": "exit",
                                            "exit_code": exit_code})

    def thread(self, pid: int, tid: int, ts_ns: int, name: str, *, native_id: int = 0) -> None:
        """A thread start row carrying its name."""
        self._rows["threads"].append({"pid": pid, "tid": tid, "ts_ns": ts_ns, "event": "start",
                                      "native_id": native_id or tid, "name": name})

    def stack(self, pid: int, frames: Sequence[Frame]) -> int:
        """Intern a stack (outermost frame first); return its stack_id."""
        parent = 0
        for frame in frames:
            fkey = (pid, tuple(frame))
            if fkey not in self._frames:
                frame_id = len([k for k in self._frames if k[0] == pid]) + 1
                self._frames[fkey] = frame_id  # type: ignore[index]
                function, filename, lineno = frame
                self._rows["frames"].append({"pid": pid, "frame_id": frame_id,
                                             "function": function, "filename": filename,
                                             "lineno": lineno})
            frame_id = self._frames[fkey]  # type: ignore[index]
            nkey = (pid, parent, frame_id)
            if nkey not in self._nodes:
                stack_id = len([k for k in self._nodes if k[0] == pid]) + 1
                self._nodes[nkey] = stack_id
                self._rows["stacks"].append({"pid": pid, "stack_id": stack_id,
                                             "parent_id": parent, "frame_id": frame_id})
            parent = self._nodes[nkey]
        return parent

    def variable(
        self,
        pid: int,
        ts_ns: int,
        name: str,
        type_name: str,
        address: int,
        size: int,
        *,
        deep_size: int | None = None,
        object_id: int | None = None,
        scope: str = "<module>",
        scope_id: int = 0,
        tid: int = 1,
        stack_id: int = 0,
        contains: Sequence[int] = (),
    ) -> int:
        """A track_var row; returns its var_id (for ``contains`` of later variables)."""
        self._var_ids += 1
        self._rows["variables"].append({
            "pid": pid, "tid": tid, "ts_ns": ts_ns, "var_id": self._var_ids, "name": name,
            "type_name": type_name, "object_id": object_id if object_id is not None else address,
            "address": address, "size": size,
            "deep_size": deep_size if deep_size is not None else size, "scope": scope,
            "scope_id": scope_id, "stack_id": stack_id, "contains": list(contains),
        })
        return self._var_ids

    def scope(
        self, pid: int, scope_id: int, name: str, enter_ns: int, exit_ns: int | None,
        *, tid: int = 1, parent_id: int = 0,
    ) -> None:
        """A named scope's enter row and, with ``exit_ns``, its exit row."""
        base = {"pid": pid, "tid": tid, "scope_id": scope_id, "parent_id": parent_id,
                "name": name}
        self._rows["scopes"].append({**base, "ts_ns": enter_ns, "event": "enter"})
        if exit_ns is not None:
            self._rows["scopes"].append({**base, "ts_ns": exit_ns, "event": "exit"})

    def ffi(
        self, pid: int, ts_ns: int, event: str, details: str = "{}", *, tid: int = 1,
        stack_id: int = 0,
    ) -> None:
        """An FFI boundary event (``details`` is a JSON object text)."""
        self._rows["ffi"].append({"pid": pid, "tid": tid, "ts_ns": ts_ns, "event": event,
                                  "details": details, "stack_id": stack_id})

    def producer_stats(self, pid: int, ts_ns: int, **counters: int) -> None:
        """Cumulative tracer counters (events, bytes, drops, buffer_high_water, ...)."""
        row: dict[str, Any] = {name: None for name in TABLES["producer_stats"].names}
        row.update(pid=pid, ts_ns=ts_ns, **counters)
        self._rows["producer_stats"].append(row)

    def aggregate(
        self, pid: int, ts_ns: int, stack_id: int, alloc_count: int, alloc_bytes: int,
        *, tid: int = 1, domain: int = DOMAIN_OBJ,
    ) -> None:
        """Short-lived pairs folded at the source (aggregated mode)."""
        self._rows["aggregates"].append({"pid": pid, "tid": tid, "ts_ns": ts_ns,
                                         "stack_id": stack_id, "domain": domain,
                                         "alloc_count": alloc_count, "alloc_bytes": alloc_bytes})

    def ingest(self, producer: str, pid: int, ts_ns: int, **counters: int) -> None:
        """The broker's cumulative per-producer counters."""
        row: dict[str, Any] = {"batches": 0, "events": 0, "gaps": 0, "duplicates": 0,
                               "rejected": 0}
        row.update(counters)
        self._rows["ingest"].append({"ts_ns": ts_ns, "producer": producer, "pid": pid, **row})

    # -- output --------------------------------------------------------------------------
    def tables(self) -> dict[str, pa.Table]:
        """Every log table (empty ones included) with the log's exact schemas."""
        return {
            name: pa.Table.from_pylist(self._rows.get(name, []), schema=schema)
            for name, schema in TABLES.items()
        }
