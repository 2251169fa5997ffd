"""Per-test memory figures for the pytest plugin, measured from the events in the log.

Used by :mod:`memscope.integrations.pytest_plugin` in a helper process (``python -m
memscope.integrations.pytest_measure LOG PID T0 T1 FILENAME FUNCTION``), so that DuckDB and
pyarrow are never imported, and their work never traced, inside the test process. The answer
is one JSON object on stdout (:func:`measure`).

Definitions, for the blocks of process ``PID`` allocated during the test, i.e. whose
allocation time is in ``[T0, T1]`` (CLOCK_MONOTONIC nanoseconds), in any thread and any
allocator domain:

* ``peak_bytes``: the highest total of those blocks alive at once during the test (frees of
  blocks allocated before the test are not counted; memray's ``limit_memory`` measures the
  same way). ``peak_sites``: what was alive at that moment, by allocation site.
* ``leaked_bytes``: those blocks still alive at ``T1`` whose Python stack, when allocated,
  includes the test function itself (``FILENAME`` and ``FUNCTION``, the code object's
  ``co_filename`` and ``co_qualname``): memory the test's own code allocated and did not
  give back, including through functions it called. ``leak_sites``: the same, by site.

A site is the innermost frame of the allocation's stack (``file:line function``); blocks
allocated with no Python frame are grouped under ``<no Python frame>``.

How: the process's memory events of ``[T0, T1]`` are folded, in time order, into a fresh
analysis state (:mod:`memscope.analyzers.fold`, the fold every report reads; no block
matching over the whole log): a free of a block allocated before ``T0`` is then an
unmatched free, outside every total, which is the definition above. The state's peak and
what was live at it per site give ``peak_*``; its live blocks, whose stacks are walked for
the test's frame, give ``leak_*``. Events of one timestamp are folded in log order.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

#: Allocation sites listed in a failure message.
TOP_SITES = 5
_NO_FRAME = "<no Python frame>"


def window_events(batches: Iterable[Any], pid: int, t0: int, t1: int) -> dict[str, np.ndarray]:
    """The memory events of ``pid`` in ``[t0, t1]`` from record batches, sorted by time."""
    from memscope.protocol.log_schema import MEMORY

    parts: dict[str, list[np.ndarray]] = {name: [] for name in MEMORY.names}
    for batch in batches:
        pids = batch.column("pid").to_numpy()
        ts = batch.column("ts_ns").to_numpy()
        keep = (pids == pid) & (ts >= t0) & (ts <= t1)
        if keep.any():
            for name in MEMORY.names:
                parts[name].append(batch.column(name).to_numpy()[keep])
    columns = {
        name: (
            np.concatenate(values)
            if values
            else np.zeros(0, MEMORY.field(name).type.to_pandas_dtype())
        )
        for name, values in parts.items()
    }
    order = np.argsort(columns["ts_ns"], kind="stable")  # ties keep log order
    return {name: np.ascontiguousarray(values[order]) for name, values in columns.items()}


def _connection_events(con: Any, pid: int, t0: int, t1: int) -> dict[str, np.ndarray]:
    """The window's events from a views connection's ``raw_memory`` (in-memory logs)."""
    table = con.sql(
        "SELECT * FROM raw_memory WHERE pid = $pid AND ts_ns BETWEEN $t0 AND $t1",
        params={"pid": pid, "t0": t0, "t1": t1},
    ).to_arrow_table()
    return window_events(table.to_batches(), pid, t0, t1)


def _site(stacks: Any, pid: int, stack_id: int) -> str:
    frames = stacks.frames(pid, stack_id) if stack_id else ()
    if not frames:
        return _NO_FRAME
    function, filename, lineno = frames[0]
    return f"{filename}:{lineno} {function}"


def _top(stacks: Any, pid: int, rows: Iterable[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """(stack_id, bytes, blocks) rows summed by site: the largest :data:`TOP_SITES`."""
    by_site: dict[str, list[int]] = {}
    for stack_id, nbytes, blocks in rows:
        if nbytes or blocks:
            total = by_site.setdefault(_site(stacks, pid, stack_id), [0, 0])
            total[0] += int(nbytes)
            total[1] += int(blocks)
    ranked = sorted(by_site.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_SITES]
    return [{"site": site, "bytes": n, "blocks": c} for site, (n, c) in ranked]


def measure(
    con: Any,
    pid: int,
    t0: int,
    t1: int,
    filename: str,
    function: str,
    events: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The test's peak and leaks (see the module docstring).

    ``con``: a views connection (its stack tree names the sites); ``events``: the window's
    memory events (:func:`window_events`), else read from ``con``'s ``raw_memory``.
    """
    from memscope.analyzers.fold import LIVE, FoldParams
    from memscope.analyzers.stacks import resolver
    from memscope.analyzers.state import new_fold
    from memscope.protocol.log_schema import MEMORY

    window = events if events is not None else _connection_events(con, pid, t0, t1)
    fold = new_fold(FoldParams())
    fold.feed(*(window[name] for name in MEMORY.names))
    state = fold.export(["processes", "sites", "blocks"])
    procs, sites, blocks = state["processes"], state["sites"], state["blocks"]
    row = np.flatnonzero(procs["pid"] == pid)
    peak_bytes = int(procs["peak_bytes"][row[0]]) if len(row) else 0
    stacks = resolver(con)
    peak_ts: int | None = None
    peak_sites: list[dict[str, Any]] = []
    if peak_bytes > 0:
        peak_ts = int(procs["peak_ts_ns"][row[0]])
        mine = sites["pid"] == pid
        peak_sites = _top(
            stacks,
            pid,
            zip(
                sites["stack_id"][mine].tolist(),
                sites["peak_bytes"][mine].tolist(),
                sites["peak_blocks"][mine].tolist(),
                strict=True,
            ),
        )
    else:
        peak_bytes = 0
    live = (blocks["pid"] == pid) & (blocks["state"] == LIVE)
    live_stacks = blocks["stack_id"][live]
    own = stacks.matching(
        lambda frame: frame[0] == function and frame[1] == filename,
        {(pid, int(s)) for s in np.unique(live_stacks).tolist()},
    )
    leaking = np.fromiter(
        ((pid, int(s)) in own for s in live_stacks.tolist()), bool, len(live_stacks)
    )
    leaked_sizes = blocks["size"][live][leaking]
    leaked = int(leaked_sizes.sum())
    return {
        "peak_bytes": peak_bytes,
        "peak_ts_ns": peak_ts,
        "peak_sites": peak_sites,
        "leaked_bytes": leaked,
        "leaked_blocks": int(leaking.sum()),
        "leak_sites": _top(
            stacks,
            pid,
            zip(
                live_stacks[leaking].tolist(),
                leaked_sizes.tolist(),
                [1] * int(leaking.sum()),
                strict=True,
            ),
        )
        if leaked
        else [],
    }


def main(argv: list[str] | None = None) -> int:
    """Answer one request (see the module docstring) as JSON on stdout."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 6:
        print(
            "usage: python -m memscope.integrations.pytest_measure LOG PID T0 T1 FILENAME "
            f"FUNCTION (got {len(args)} arguments)",
            file=sys.stderr,
        )
        return 2
    log, pid, t0, t1, filename, function = args
    from memscope.analyzers.state import LogCursor
    from memscope.analyzers.views import connect, open_reader
    from memscope.eventlog.chunks import decode_chunk_batches
    from memscope.eventlog.log import LogError

    try:
        reader = open_reader(log)
        cursor = LogCursor()
        batches = [
            *cursor.new_batches(reader, "memory"),
            *decode_chunk_batches(cursor.new_batches(reader, "memory_chunks")),
        ]
        events = window_events(batches, int(pid), int(t0), int(t1))
        con = connect(reader, raw_memory=False)  # the stack tree and frames only
        answer = measure(con, int(pid), int(t0), int(t1), filename, function, events)
    except (OSError, ValueError, RuntimeError, LogError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
