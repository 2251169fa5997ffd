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

from memscope.analyzers.common import drop_none, rows
from memscope.analyzers.stacks import resolver

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
    frames = resolver(con).frames(pid, stack_id)
    native = next((f for f in frames if is_native_frame(f)), None)
    python = next((f for f in frames if not is_native_frame(f)), None)
    out: dict[str, Any] = {}
    if native is not None:
        out["library"] = _library_label(native[1])
        out["native_caller"] = f"{native[0]} ({native[1]})"
    if python is not None:
        out["python_site"] = f"{python[0]} ({python[1]}:{python[2]})"
        out["python_file"] = python[1]
        out["python_line"] = python[2]
    return out


def is_native_frame(frame: tuple[str, str, int]) -> bool:
    """Whether a (function, filename, lineno) frame is native (see the module docstring)."""
    _, filename, lineno = frame
    return lineno == 0 and not (filename.endswith(".py") or filename.startswith("<"))


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
    return {
        "by_kind": {c["event"].removeprefix("native."): c["count"] for c in counts},
        "items": [drop_none(i) for i in items],
    }


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def ctypes_calls(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """``ctypes.call_function`` call sites with the native blocks allocated under each.

    One row per call site: the Python stack of the ``ctypes.call_function`` events (their
    count, first time and threads). A block belongs to a call site when its stack is the
    call's Python stack plus one native frame (the stack the producer gives an allocation
    made inside the call); the analysis state keeps blocks per stack, so the figures cover
    every call made from that site. ``by_library`` splits them by the library that called
    malloc (the called function itself when ctypes called it directly through libffi, or
    ctypes' own machinery).
    """
    found = rows(
        con,
        """WITH calls AS (
            SELECT pid, stack_id, count(*) AS calls, min(ts_ns) AS first_ts_ns,
                   list(DISTINCT tid ORDER BY tid) AS tids,
                   arg_min(details, ts_ns) AS details
            FROM ffi WHERE starts_with(event, 'ctypes.call_function')
            GROUP BY pid, stack_id ORDER BY first_ts_ns, pid, stack_id LIMIT ?)
        SELECT c.pid, c.stack_id, c.calls, c.first_ts_ns, c.tids, c.details,
            x.stack_id AS block_stack, coalesce(sum(x.allocations), 0) AS blocks,
            coalesce(sum(x.bytes_allocated), 0) AS bytes,
            coalesce(sum(x.live_blocks), 0) AS live_blocks,
            coalesce(sum(x.live_bytes), 0) AS live_bytes
        FROM calls c
        LEFT JOIN raw_stacks s ON s.pid = c.pid AND s.parent_id = c.stack_id
        LEFT JOIN state_sites x ON x.pid = c.pid AND x.stack_id = s.stack_id
        GROUP BY c.pid, c.stack_id, c.calls, c.first_ts_ns, c.tids, c.details, x.stack_id
        ORDER BY c.first_ts_ns, c.pid, c.stack_id, x.stack_id""",
        [MAX_ITEMS],
    )
    sites: dict[tuple[int, int], dict[str, Any]] = {}
    counters = ("blocks", "bytes", "live_blocks", "live_bytes")
    for f in found:
        key = (f["pid"], f["stack_id"])
        site = sites.get(key)
        if site is None:
            site = sites[key] = {
                "pid": f["pid"],
                "stack_id": f["stack_id"],
                "calls": f["calls"],
                "first_ts_ns": f["first_ts_ns"],
                "tids": f["tids"],
                "details": _json(f["details"]),
                **{c: 0 for c in counters},
                "by_library": {},
            }
        if not f["blocks"] or f["block_stack"] is None:
            continue
        for c in counters:
            site[c] += f[c]
        library = stack_sites(con, f["pid"], f["block_stack"]).get("library") or "unknown"
        part = site["by_library"].setdefault(library, {c: 0 for c in counters})
        for c in counters:
            part[c] += f[c]
    out = list(sites.values())
    add_sites(con, out)
    return [drop_none(c) for c in out]
