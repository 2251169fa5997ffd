"""Native-mode parts of the FFI analyzer: native frames, the shim's findings, ctypes links.

In native mode (``memscope run --native``) every native event's stack ends in one *native
frame*: the return address in the code that called malloc/mmap, resolved by the producer to a
``frames`` row whose ``function`` is the symbol (or ``0x<offset>`` in a stripped library),
``filename`` the library's path and ``lineno`` 0. Python frames have a line >= 1 (or a
``<...>`` / ``.py`` filename), which is how :data:`NATIVE_FRAME` tells them apart.

The allocator shim blocks frees it can prove wrong (the process survives them) and the
producer sends each as an ``ffi`` row: ``native.double_free``, ``native.invalid_free`` (an
address malloc never returned) or ``native.invalid_realloc``, with details ``address``,
``caller`` and ``library``.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import duckdb

from memscope.analyzers._common import drop_none, rows

#: SQL predicate over a ``frames`` row: a native frame (see the module docstring).
NATIVE_FRAME = "(lineno = 0 AND NOT (filename LIKE '%.py' OR filename LIKE '<%'))"
#: ``ffi`` events of the shim's findings.
FINDING_EVENTS = ("native.double_free", "native.invalid_free", "native.invalid_realloc")
#: Libraries through which a ctypes/cffi call reaches a C function directly.
FFI_TRAMPOLINES = ("libffi",)
#: Findings and linked calls listed one by one (counts cover all of them).
MAX_ITEMS = 200


def _library_label(path: str | None) -> str | None:
    if not path:
        return None
    name = PurePosixPath(path).name
    if name.startswith(FFI_TRAMPOLINES):
        return f"{name} (a direct ctypes/cffi call)"
    return name


def stack_sites(con: duckdb.DuckDBPyConnection, pid: int, stack_id: int) -> dict[str, Any]:
    """The native caller and the innermost Python frame of one stack."""
    frames = rows(
        con,
        f"""SELECT depth, function, filename, lineno, {NATIVE_FRAME} AS native
        FROM frames WHERE pid = ? AND stack_id = ? ORDER BY depth""",
        [pid, stack_id],
    )
    native = next((f for f in frames if f["native"]), None)
    python = next((f for f in frames if not f["native"]), None)
    out: dict[str, Any] = {}
    if native is not None:
        out["library"] = _library_label(native["filename"])
        out["native_caller"] = f"{native['function']} ({native['filename']})"
    if python is not None:
        out["python_site"] = f"{python['function']} ({python['filename']}:{python['lineno']})"
        out["python_file"] = python["filename"]
        out["python_line"] = python["lineno"]
    return out


def add_sites(con: duckdb.DuckDBPyConnection, items: list[dict[str, Any]]) -> None:
    """Add ``library``/``native_caller``/``python_site`` to items with a pid and stack_id."""
    for item in items:
        if item.get("stack_id"):
            item.update(stack_sites(con, int(item["pid"]), int(item["stack_id"])))


def findings(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The frees the shim blocked: counts by kind, then each one (first MAX_ITEMS)."""
    marks = ", ".join("?" for _ in FINDING_EVENTS)
    counts = rows(
        con,
        f"""SELECT event, count(*) AS count FROM ffi WHERE event IN ({marks})
        GROUP BY event ORDER BY event""",
        list(FINDING_EVENTS),
    )
    found = rows(
        con,
        f"""SELECT pid, tid, ts_ns, event, details, stack_id FROM ffi
        WHERE event IN ({marks}) ORDER BY ts_ns, pid, tid LIMIT ?""",
        [*FINDING_EVENTS, MAX_ITEMS],
    )
    items = []
    for f in found:
        details = _json(f.pop("details"))
        item = {"kind": f["event"].removeprefix("native."), **f}
        if isinstance(details, dict):
            item["address"] = details.get("address")
            item["blocked"] = details.get("blocked")
        items.append(item)
    add_sites(con, items)
    return {"by_kind": {c["event"].removeprefix("native."): c["count"] for c in counts},
            "items": [drop_none(i) for i in items]}


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def ctypes_calls(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """``ctypes.call_function`` events with the native blocks allocated during each call.

    A block belongs to a call when it was allocated by the same thread after the call event
    and before that thread's next ctypes call event, and its stack is the call's Python stack
    plus one native frame (the stack the producer gives an allocation made inside the call).
    ``by_library`` splits them by the library that called malloc (the called function itself
    when ctypes called it directly through libffi, or ctypes' own machinery).
    """
    found = rows(
        con,
        """WITH calls AS (
            SELECT pid, tid, ts_ns, stack_id, details,
                LEAD(ts_ns) OVER (PARTITION BY pid, tid ORDER BY ts_ns) AS next_ts_ns
            FROM ffi WHERE starts_with(event, 'ctypes.call_function')
            ORDER BY ts_ns, pid, tid LIMIT ?)
        SELECT c.pid, c.tid, c.ts_ns, c.stack_id, any_value(c.details) AS details,
            a.stack_id AS block_stack, count(a.ts_ns) AS blocks,
            coalesce(sum(a.size), 0) AS bytes,
            count(a.ts_ns) FILTER (WHERE a.end_ts_ns IS NULL) AS live_blocks,
            coalesce(sum(a.size) FILTER (WHERE a.end_ts_ns IS NULL), 0) AS live_bytes
        FROM calls c
        LEFT JOIN raw_stacks s ON s.pid = c.pid AND s.parent_id = c.stack_id
        LEFT JOIN _allocations a ON a.pid = c.pid AND a.tid = c.tid
            AND a.stack_id = s.stack_id AND a.ts_ns >= c.ts_ns
            AND (c.next_ts_ns IS NULL OR a.ts_ns < c.next_ts_ns)
        GROUP BY c.pid, c.tid, c.ts_ns, c.stack_id, a.stack_id
        ORDER BY c.ts_ns, c.pid, c.tid, a.stack_id""",
        [MAX_ITEMS],
    )
    calls: dict[tuple[int, int, int], dict[str, Any]] = {}
    counters = ("blocks", "bytes", "live_blocks", "live_bytes")
    for f in found:
        key = (f["pid"], f["tid"], f["ts_ns"])
        call = calls.get(key)
        if call is None:
            call = calls[key] = {
                "pid": f["pid"], "tid": f["tid"], "ts_ns": f["ts_ns"], "stack_id": f["stack_id"],
                "details": _json(f["details"]), **{c: 0 for c in counters}, "by_library": {}}
        if not f["blocks"]:
            continue
        for c in counters:
            call[c] += f[c]
        library = stack_sites(con, f["pid"], f["block_stack"]).get("library") or "unknown"
        part = call["by_library"].setdefault(library, {c: 0 for c in counters})
        for c in counters:
            part[c] += f[c]
    out = list(calls.values())
    add_sites(con, out)
    return [drop_none(c) for c in out]
