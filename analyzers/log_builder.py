"""Build small event logs by hand: the testing source for analyzers, exporters and benches.

:class:`LogBuilder` collects rows for each log table and hands them out as Arrow tables
with exactly the schemas of :mod:`memscope.protocol.log_schema`, ready for
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

from memscope.protocol.log_schema import TABLES
from memscope.protocol.wire import (
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
            pid,
            ts_ns=ts_ns,
            kind=KIND_REALLOC,
            address=address,
            old_address=old_address,
            size=size,
            **kw,
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
        sample_bytes: int | None = None,
        exit_ts_ns: int | None = None,
        exit_code: int = 0,
    ) -> None:
        """A process start row and, with ``exit_ts_ns``, its exit row."""
        base = {
            "pid": pid,
            "ppid": ppid,
            "host": host,
            "producer": f"{host}:{pid}:{ts_ns}",
            "argv": list(argv),
            "executable": "/usr/bin/python3",
            "python": "3.11.7",
            "mode": mode,
            "sample_bytes": sample_bytes,
        }
        self._rows["processes"].append(
            {**base, "ts_ns": ts_ns, "event": "start", "exit_code": None}
        )
        if exit_ts_ns is not None:
            self._rows["processes"].append(
                {**base, "ts_ns": exit_ts_ns, "event": "exit", "exit_code": exit_code}
            )

    def thread(self, pid: int, tid: int, ts_ns: int, name: str, *, native_id: int = 0) -> None:
        """A thread start row carrying its name."""
        self._rows["threads"].append(
            {
                "pid": pid,
                "tid": tid,
                "ts_ns": ts_ns,
                "event": "start",
                "native_id": native_id or tid,
                "name": name,
            }
        )

    def stack(self, pid: int, frames: Sequence[Frame]) -> int:
        """Intern a stack (outermost frame first); return its stack_id."""
        parent = 0
        for frame in frames:
            fkey = (pid, tuple(frame))
            if fkey not in self._frames:
                frame_id = len([k for k in self._frames if k[0] == pid]) + 1
                self._frames[fkey] = frame_id  # type: ignore[index]
                function, filename, lineno = frame
                self._rows["frames"].append(
                    {
                        "pid": pid,
                        "frame_id": frame_id,
                        "function": function,
                        "filename": filename,
                        "lineno": lineno,
                    }
                )
            frame_id = self._frames[fkey]  # type: ignore[index]
            nkey = (pid, parent, frame_id)
            if nkey not in self._nodes:
                stack_id = len([k for k in self._nodes if k[0] == pid]) + 1
                self._nodes[nkey] = stack_id
                self._rows["stacks"].append(
                    {"pid": pid, "stack_id": stack_id, "parent_id": parent, "frame_id": frame_id}
                )
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
        self._rows["variables"].append(
            {
                "pid": pid,
                "tid": tid,
                "ts_ns": ts_ns,
                "var_id": self._var_ids,
                "name": name,
                "type_name": type_name,
                "object_id": object_id if object_id is not None else address,
                "address": address,
                "size": size,
                "deep_size": deep_size if deep_size is not None else size,
                "scope": scope,
                "scope_id": scope_id,
                "stack_id": stack_id,
                "contains": list(contains),
            }
        )
        return self._var_ids

    def scope(
        self,
        pid: int,
        scope_id: int,
        name: str,
        enter_ns: int,
        exit_ns: int | None,
        *,
        tid: int = 1,
        parent_id: int = 0,
    ) -> None:
        """A named scope's enter row and, with ``exit_ns``, its exit row."""
        base = {"pid": pid, "tid": tid, "scope_id": scope_id, "parent_id": parent_id, "name": name}
        self._rows["scopes"].append({**base, "ts_ns": enter_ns, "event": "enter"})
        if exit_ns is not None:
            self._rows["scopes"].append({**base, "ts_ns": exit_ns, "event": "exit"})

    def ffi(
        self,
        pid: int,
        ts_ns: int,
        event: str,
        details: str = "{}",
        *,
        tid: int = 1,
        stack_id: int = 0,
    ) -> None:
        """An FFI boundary event (``details`` is a JSON object text)."""
        self._rows["ffi"].append(
            {
                "pid": pid,
                "tid": tid,
                "ts_ns": ts_ns,
                "event": event,
                "details": details,
                "stack_id": stack_id,
            }
        )

    def producer_stats(self, pid: int, ts_ns: int, **counters: int) -> None:
        """Cumulative tracer counters (events, bytes, drops, buffer_high_water, ...)."""
        row: dict[str, Any] = {name: None for name in TABLES["producer_stats"].names}
        row.update(pid=pid, ts_ns=ts_ns, **counters)
        self._rows["producer_stats"].append(row)

    def aggregate(
        self,
        pid: int,
        ts_ns: int,
        stack_id: int,
        alloc_count: int,
        alloc_bytes: int,
        *,
        tid: int = 1,
        domain: int = DOMAIN_OBJ,
    ) -> None:
        """Short-lived pairs folded at the source (aggregated mode)."""
        self._rows["aggregates"].append(
            {
                "pid": pid,
                "tid": tid,
                "ts_ns": ts_ns,
                "stack_id": stack_id,
                "domain": domain,
                "alloc_count": alloc_count,
                "alloc_bytes": alloc_bytes,
            }
        )

    def ingest(self, producer: str, pid: int, ts_ns: int, **counters: int) -> None:
        """The broker's cumulative per-producer counters."""
        row: dict[str, Any] = {"batches": 0, "events": 0, "gaps": 0, "duplicates": 0, "rejected": 0}
        row.update(counters)
        self._rows["ingest"].append({"ts_ns": ts_ns, "producer": producer, "pid": pid, **row})

    # -- output --------------------------------------------------------------------------
    def tables(self) -> dict[str, pa.Table]:
        """Every log table (empty ones included) with the log's exact schemas."""
        return {
            name: pa.Table.from_pylist(self._rows.get(name, []), schema=schema)
            for name, schema in TABLES.items()
        }


def sample_log() -> LogBuilder:
    """A small two-process log exercising every analyzer (the committed sample's source).

    Holds: tracked variables of every category with a known lifetime, an alias and a
    containment; a scope; a growing cache that never frees (a leak); temporary allocations;
    a double free; a domain mismatch; a 2 MiB raw block; numpy data; a realloc; a free of an
    unseen block; ctypes boundary events; tracer and ingest counters.
    """
    from memscope.protocol.wire import DOMAIN_MEM, DOMAIN_NUMPY, DOMAIN_RAW

    b = LogBuilder()
    main, child = 100, 101
    b.process(main, 1_000, argv=["app.py", "--users", "3"], exit_ts_ns=1_000_000)
    b.process(child, 200_000, ppid=main, argv=["app.py", "--worker"], exit_ts_ns=900_000)
    b.thread(main, 1, 1_000, "MainThread")
    b.thread(main, 2, 5_000, "worker-1")
    b.thread(child, 1, 200_000, "MainThread")
    root = [("<module>", "app.py", 40)]
    load = b.stack(main, root + [("load_users", "app.py", 12)])
    cache = b.stack(main, root + [("build_cache", "app.py", 22)])
    parse = b.stack(main, root + [("load_users", "app.py", 12), ("parse", "app.py", 30)])
    release = b.stack(main, root + [("release", "ext.py", 7)])
    native = b.stack(
        main,
        root
        + [
            ("call_native", "app.py", 50),
            ("create_string_buffer", "/usr/lib/python3.11/ctypes/__init__.py", 66),
        ],
    )
    arrays = b.stack(main, root + [("make_matrix", "app.py", 60)])
    worker = b.stack(child, [("<module>", "app.py", 40), ("work", "app.py", 80)])

    b.scope(main, 1, "load_users", 10_000, 60_000)
    # load_users: one block per size bucket; the 48 B and 300 B blocks are freed.
    for i, size in enumerate((48, 200, 300, 2_000, 10_000, 50_000)):
        b.alloc(main, 11_000 + i * 1_000, 0x10_000 + i * 0x1_0000, size, stack_id=load)
    b.free(main, 40_000, 0x10_000, stack_id=load)
    b.free(main, 41_000, 0x30_000, stack_id=load)
    # users (dict) at 0x20_000 is tracked at 12_500 and dies when freed at 70_000.
    users = b.variable(
        main,
        12_500,
        "users",
        "dict[str, list[int]]",
        0x20_000,
        200,
        deep_size=1_400,
        scope="load_users",
        scope_id=1,
        stack_id=load,
    )
    ids = b.variable(
        main,
        13_000,
        "ids",
        "list[int]",
        0x40_000,
        2_000,
        deep_size=2_600,
        scope="load_users",
        scope_id=1,
        stack_id=load,
    )
    b.variable(
        main,
        13_500,
        "users_alias",
        "dict[str, list[int]]",
        0x20_000,
        200,
        deep_size=1_400,
        object_id=0x20_000,
        scope="load_users",
        scope_id=1,
        contains=[ids],
    )
    b.free(main, 70_000, 0x20_000, stack_id=load)
    del users
    # Temporary parse buffers: freed 500 ns after allocation.
    for i in range(8):
        t = 80_000 + i * 2_000
        b.alloc(main, t, 0x500_000, 32, stack_id=parse)
        b.free(main, t + 500, 0x500_000, stack_id=parse)
    # A cache that grows and is never freed.
    for i in range(9):
        b.alloc(main, 100_000 + i * 100_000, 0x600_000 + i * 0x1_000, 1_024, stack_id=cache, tid=2)
    # A double free, a domain mismatch, a free of a block never seen.
    b.alloc(main, 300_000, 0xD0_000, 64, stack_id=release)
    b.free(main, 310_000, 0xD0_000, stack_id=release)
    b.free(main, 320_000, 0xD0_000, stack_id=release)
    b.alloc(main, 330_000, 0xE0_000, 128, stack_id=release, domain=DOMAIN_MEM)
    b.free(main, 340_000, 0xE0_000, stack_id=release)
    b.free(main, 350_000, 0xF0_000, stack_id=release)
    # Native memory: a 2 MiB ctypes buffer (raw), numpy data alive at exit, a realloc.
    b.alloc(main, 400_000, 0x1_000_000, 2 * 1024 * 1024, stack_id=native, domain=DOMAIN_RAW)
    b.free(main, 450_000, 0x1_000_000, stack_id=native, domain=DOMAIN_RAW)
    b.alloc(main, 500_000, 0x2_000_000, 80_000, stack_id=arrays, domain=DOMAIN_NUMPY)
    b.alloc(main, 510_000, 0x3_000_000, 4_000, stack_id=arrays, domain=DOMAIN_RAW)
    b.realloc(main, 520_000, 0x3_000_000, 0x3_100_000, 16_000, stack_id=arrays, domain=DOMAIN_RAW)
    # More tracked objects: every category.
    b.variable(
        main,
        500_500,
        "matrix",
        "numpy.ndarray[float64]",
        0x2_000_000,
        112,
        deep_size=80_112,
        stack_id=arrays,
    )
    b.variable(main, 15_000, "title", "str", 0x11_000, 60, stack_id=load)
    b.variable(main, 15_100, "count", "int", 0x12_000, 28, stack_id=load)
    b.variable(
        main, 15_200, "ratios", "list[float]", 0x13_000, 8_056, deep_size=80_056, stack_id=load
    )
    b.variable(main, 15_300, "handler", "function", 0x14_000, 144, stack_id=load)
    b.variable(main, 15_400, "json_mod", "module", 0x15_000, 72, deep_size=2_000)
    b.variable(main, 15_500, "raw", "bytearray", 0x16_000, 1_057)
    b.variable(
        main, 15_600, "tree", "dict[str, dict[str, list[int]]]", 0x17_000, 232, deep_size=3_000
    )
    for i in range(12):
        b.variable(
            main,
            16_000 + i * 10,
            f"user_{i}",
            "myapp.models.User",
            0x18_000 + i * 64,
            56,
            deep_size=400,
        )
    # The child process: a little work of its own.
    for i in range(4):
        b.alloc(child, 300_000 + i * 10_000, 0x70_000 + i * 0x100, 512, stack_id=worker)
    b.free(child, 800_000, 0x70_000, stack_id=worker)
    b.variable(child, 305_000, "batch", "list[str]", 0x70_100, 512, deep_size=900, scope="work")
    # FFI events, tracer and ingest counters.
    b.ffi(main, 399_000, "ctypes.dlopen", '{"name": "libc.so.6"}', stack_id=native)
    b.ffi(
        main, 399_500, "ctypes.dlsym", '{"library": "libc.so.6", "name": "strlen"}', stack_id=native
    )
    for i in range(3):
        b.ffi(main, 401_000 + i, "ctypes.call_function", '{"func_pointer": 1234}', stack_id=native)
    b.ffi(main, 402_000, "ctypes.string_at", '{"address": 16777216, "size": 16}', stack_id=native)
    b.producer_stats(
        main, 990_000, events=64, bytes=2_048, drops=0, buffer_high_water=32, batches=3, spooled=0
    )
    b.producer_stats(
        child, 890_000, events=5, bytes=320, drops=0, buffer_high_water=5, batches=1, spooled=0
    )
    b.ingest("testhost:100:1000", main, 995_000, batches=3, events=64)
    b.ingest("testhost:101:200000", child, 895_000, batches=1, events=5)
    return b


#: Options the committed sample (tests/data/analysis_sample/) is generated with.
SAMPLE_OPTIONS = {
    "log_id": "sample-log",
    "generated_at": "2026-01-01T00:00:00Z",
    "oversized_bytes": 1024 * 1024,
    "slots_min_instances": 10,
    "time_buckets": 20,
}


def write_sample(out_dir: Any) -> list[Any]:
    """Write the six files of :func:`sample_log` into ``out_dir``; return their paths."""
    from pathlib import Path

    from memscope.analyzers.common import AnalyzerOptions
    from memscope.analyzers.runner import analyze_tables

    options = AnalyzerOptions(out_dir=Path(out_dir), **SAMPLE_OPTIONS)  # type: ignore[arg-type]
    return analyze_tables(sample_log().tables(), options)


def write_log(
    tables: dict[str, pa.Table],
    path: Any,
    *,
    memory_segments: int = 1,
    settings: Any = None,
) -> Any:
    """Write ``tables`` as a log at ``path`` (an ``events/`` dir) with the broker's LogWriter.

    ``memory_segments`` > 1 splits the memory table over that many segment files.
    Returns the log directory.
    """
    from pathlib import Path

    from memscope.config import Settings
    from memscope.eventlog.log import LogWriter

    base = settings or Settings()
    if memory_segments > 1:
        base = base.replace(segment_max_bytes=1)  # every append closes its segment
    out = Path(path)
    writer = LogWriter(out, base)
    for name, table in tables.items():
        if name == "memory" and memory_segments > 1 and table.num_rows:
            step = -(-table.num_rows // memory_segments)
            for start in range(0, table.num_rows, step):
                writer.append(name, table.slice(start, step))
        elif table.num_rows:
            writer.append(name, table)
    writer.close()
    return out


def split_memory(tables: dict[str, pa.Table]) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """``tables`` as two parts of a growing log.

    First every table with the first half of the memory events, then the second half of the
    memory events (the other tables empty).
    """
    first, second = {}, {}
    for name, table in tables.items():
        half = table.num_rows // 2 if name == "memory" else table.num_rows
        first[name] = table.slice(0, half)
        second[name] = table.slice(half) if name == "memory" else table.slice(0, 0)
    return first, second


def run_analyzer(
    builder: LogBuilder, kind: str, *, validate: bool = True, **options: Any
) -> dict[str, Any]:
    """Run one analyzer over ``builder``'s tables (nothing written); return its report.

    With ``validate`` the report is checked against the file's JSON Schema (needs
    ``jsonschema``, a dev dependency).
    """
    from memscope.analyzers.common import AnalyzerOptions, load_schema
    from memscope.analyzers.registry import ANALYZERS
    from memscope.analyzers.runner import connect_tables_analyzed

    opts = AnalyzerOptions(**options)
    con = connect_tables_analyzed(builder.tables(), opts)
    report = ANALYZERS[kind](con, opts)
    con.close()
    if validate:
        import jsonschema

        jsonschema.validate(report, load_schema(ANALYZERS[kind].file_kind))
    return report
