"""Flame graph data: the bytes alive per allocation site, laid on the tree of Python stacks.

A flame graph model (:func:`build_flame`) is one JSON-ready dict that the HTML page, the
dashboard panel and the static SVG all draw:

``frames``
    interned ``[function, filename, lineno]`` triples.
``parent`` / ``frame``
    the call tree: node ``i`` has parent ``parent[i]`` (always ``< i``) and frame
    ``frames[frame[i]]``; node 0 is the root (parent and frame ``-1``). Paths are merged by
    frame, outermost call first, so two stacks that differ only in their inner frames share
    their outer nodes. With several processes the root's children are one node per process.
``views``
    ``{name: {"label", "node": [...], "bytes": [...], "blocks": [...], "total"}}``: the
    bytes and blocks alive at one instant, as *self* values of the nodes that allocated them
    (a site is the innermost frame of its stack). ``total`` is the sum, the root's value.
``temporal`` (``--temporal`` only)
    the run cut into ``slots`` equal slots of ``slot_ns`` from ``first_ts_ns`` (the fold's
    temporal slots: see :mod:`memscope.analyzers.fold`; 33 to 64 of them cover a run
    longer than 1,024 ns, each a power of two of ns wide) and, per node, the blocks
    allocated in slot ``a`` and ended in slot ``e > a`` (``e == slots``: still alive at the
    end of the log). The blocks allocated in slots ``i..j`` and alive at the end of slot
    ``j`` are the cells with ``i <= a <= j < e``: memray's temporal flame graph, at slot
    resolution. ``curve`` is the live bytes at the end of each fine bucket of the state's
    timeline, for the chart (seconds since ``first_ts_ns``).

Where each view comes from (see ``docs/flamegraphs.md``):

* **peak** (all processes, or one with ``pid``): the analysis state's per-site snapshot at
  the peak (``all_peak_bytes`` / ``peak_bytes``), so the root equals ``memscope stats``'
  peak exactly; **end** / **leaks**: the state's live bytes per site.
* **temporal**: the state's temporal cells (the blocks that ended, per site and
  (allocation slot, end slot), folded once) plus its live blocks (end slot ``slots``).
* **a time** (``at=SECONDS``), a thread filter at the peak or with ``temporal``: the state
  keeps no per-thread or per-instant site data, so they are computed from the log's matched
  blocks (one pass over its memory events), on the same slots.

Too many sites for a page are cut: past ``max_sites`` sites or :data:`MAX_NODES` nodes (the
heaviest sites first), the rest of each process is one ``(N smaller sites)`` node, so every
total still adds up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb

from memscope.analyzers.fold import FoldParams, temporal_slots
from memscope.analyzers.stacks import Frame, resolver

#: Flame model layout version (the page checks it).
FLAME_FORMAT = 1
#: Temporal slots across the run at most (the fold's; a run covers 33 to 64 of them).
TEMPORAL_SLOTS = temporal_slots(FoldParams())
#: Sites drawn in full; the rest are grouped per process.
MAX_SITES = 20_000
#: Call-tree nodes at most (a page of 165 k nodes opened in 1.4 s in bench): sites whose
#: paths would pass it are grouped like those past ``MAX_SITES``.
MAX_NODES = 100_000

NO_STACK: Frame = ("(no Python stack)", "", 0)


class FlameError(ValueError):
    """The flame graph asked for cannot be built (unknown pid, time outside the run...)."""


@dataclass(frozen=True)
class FlameOptions:
    """What to draw.

    Attributes:
        at: ``"peak"``, ``"end"``, or seconds since the run's first event.
        leaks: draw what is alive at the end (memray's ``--leaks``); the same as ``at="end"``.
        temporal: add per-slot data for a chosen time window (from the state; with
            ``tid``, from the log).
        pid: only this process.
        tid: only blocks allocated by this thread (its ``tid`` in the ``threads`` view).
        max_sites: sites drawn in full.
        max_nodes: call-tree nodes at most.
        slots: temporal slots at most: the fold's slots are merged pairwise (exactly) until
            at most this many cover the run.
    """

    at: str | float = "peak"
    leaks: bool = False
    temporal: bool = False
    pid: int | None = None
    tid: int | None = None
    max_sites: int = MAX_SITES
    max_nodes: int = MAX_NODES
    slots: int = TEMPORAL_SLOTS

    @property
    def instant(self) -> str | float:
        """``"peak"``, ``"end"`` or seconds."""
        return "end" if self.leaks else self.at

    @property
    def needs_log(self) -> bool:
        """Whether the state alone cannot answer (the log's blocks must be matched)."""
        instant = self.instant
        return not isinstance(instant, str) or (
            self.tid is not None and (instant == "peak" or self.temporal)
        )


SiteValues = dict[tuple[int, int], tuple[int, int]]  # (pid, stack_id) -> (bytes, blocks)


def _origin(con: duckdb.DuckDBPyConnection, pid: int | None) -> int:
    """The time origin of the run (or of the process): its first event."""
    if pid is None:
        row = con.execute("SELECT origin_ts_ns FROM state_all").fetchone()
    else:
        row = con.execute("SELECT first_ts_ns FROM state_processes WHERE pid = ?", [pid]).fetchone()
    return int(row[0]) if row and row[0] is not None and int(row[0]) >= 0 else 0


def _where(
    opts: FlameOptions, pid_col: str = "pid", tid_col: str | None = None
) -> tuple[str, list[Any]]:
    cond, params = ["TRUE"], []
    if opts.pid is not None:
        cond.append(f"{pid_col} = ?")
        params.append(opts.pid)
    if opts.tid is not None and tid_col is not None:
        cond.append(f"{tid_col} = ?")
        params.append(opts.tid)
    return " AND ".join(cond), params


def _collect(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> SiteValues:
    out: SiteValues = {}
    for pid, stack_id, nbytes, blocks in con.execute(sql, params).fetchall():
        if nbytes:
            out[(int(pid), int(stack_id))] = (int(nbytes), int(blocks or 0))
    return out


def peak_instant(con: duckdb.DuckDBPyConnection, pid: int | None) -> int | None:
    """When the peak (of one process, or of all together) was first reached."""
    if pid is None:
        row = con.execute("SELECT peak_ts_ns FROM state_all").fetchone()
    else:
        row = con.execute("SELECT peak_ts_ns FROM state_processes WHERE pid = ?", [pid]).fetchone()
    return int(row[0]) if row and row[0] is not None and int(row[0]) >= 0 else None


def state_values(con: duckdb.DuckDBPyConnection, opts: FlameOptions) -> SiteValues:
    """Per-site bytes at the peak or the end, from the analysis state alone."""
    where, params = _where(opts)
    if opts.instant == "peak":
        column = "peak" if opts.pid is not None else "all_peak"
        return _collect(
            con,
            f"""SELECT pid, stack_id, sum({column}_bytes),
            sum({column}_blocks) FROM state_sites WHERE {where}
            GROUP BY pid, stack_id ORDER BY pid, stack_id""",
            params,
        )
    if opts.tid is not None:
        where, params = _where(opts, tid_col="tid")
        return _collect(
            con,
            f"""SELECT pid, stack_id, sum(size), count(*) FROM live
            WHERE {where} GROUP BY pid, stack_id ORDER BY pid, stack_id""",
            params,
        )
    return _collect(
        con,
        f"""SELECT pid, stack_id, sum(live_bytes), sum(live_blocks)
        FROM state_sites WHERE {where} GROUP BY pid, stack_id ORDER BY pid, stack_id""",
        params,
    )


def log_values(con: duckdb.DuckDBPyConnection, opts: FlameOptions, ts_ns: int) -> SiteValues:
    """Per-site bytes of the blocks alive at ``ts_ns``, from the log's matched blocks.

    Needs a connection whose blocks are matched (``connect(..., matched=True)``).
    """
    where, params = _where(opts, tid_col="tid")
    return _collect(
        con,
        f"""SELECT pid, stack_id, sum(size), count(*) FROM _allocations
        WHERE {where} AND ts_ns <= ? AND coalesce(end_ts_ns, ?) > ?
        GROUP BY pid, stack_id ORDER BY pid, stack_id""",
        [*params, ts_ns, ts_ns + 1, ts_ns],
    )


def _span(con: duckdb.DuckDBPyConnection, pid: int | None) -> tuple[int, int]:
    where = "TRUE" if pid is None else "pid = ?"
    row = con.execute(
        f"SELECT min(first_ts_ns), max(last_ts_ns) FROM state_processes "
        f"WHERE {where} AND first_ts_ns >= 0",
        [] if pid is None else [pid],
    ).fetchone()
    if not row or row[0] is None:
        return 0, 0
    return int(row[0]), int(row[1])


Cell = tuple[int, int, int, int, int, int]  # pid, stack_id, a, e, bytes, blocks


def temporal_layout(
    con: duckdb.DuckDBPyConnection,
    max_slots: int = TEMPORAL_SLOTS,
    params: FoldParams | None = None,
) -> dict[str, int]:
    """The fold's temporal slots: ``{"slots", "slot_ns", "first_ts_ns", "merge"}``.

    Slot ``k`` is ``[first + k * slot_ns, first + (k + 1) * slot_ns)`` (``first``: the
    first event of all processes); ``slots`` cover the run's last event. ``merge`` fold
    slots (a power of two) make one slot, so that at most ``max_slots`` cover the run.
    """
    params = params or FoldParams()
    row = con.execute("SELECT origin_ts_ns, width_ns FROM state_all").fetchone()
    first, width = (int(row[0]), int(row[1])) if row else (-1, 1)
    slot_ns = max(1, width) * (params.timeline_buckets // temporal_slots(params))
    if first < 0:
        return {"slots": 1, "slot_ns": slot_ns, "first_ts_ns": 0, "merge": 1}
    span = max(0, _span(con, None)[1] - first)
    merge = 1
    while span // (slot_ns * merge) + 1 > max(1, max_slots):
        merge *= 2
    return {
        "slots": int(span // (slot_ns * merge) + 1),
        "slot_ns": int(slot_ns * merge),
        "first_ts_ns": first,
        "merge": merge,
    }


def _slot_sql(column: str) -> str:
    """SQL: the temporal slot of ``column`` (parameters: first, first, slot_ns, last slot)."""
    return f"least(CASE WHEN {column} < ? THEN 0 ELSE ({column} - ?) // ? END, ?)"


def _cells(found: list[Any]) -> list[Cell]:
    return [(int(p), int(s), int(a), int(e), int(b), int(n)) for p, s, a, e, b, n in found]


def state_temporal_cells(
    con: duckdb.DuckDBPyConnection, opts: FlameOptions, layout: dict[str, int]
) -> list[Cell]:
    """Cells ``(pid, stack_id, a, e, bytes, blocks)`` from the analysis state alone.

    The ended blocks are the fold's ``temporal`` cells; those alive at the end are its live
    blocks, with ``e == slots``. No thread filter (the cells are per site).
    """
    where, params = _where(opts)
    first, slot_ns, slots = layout["first_ts_ns"], layout["slot_ns"], layout["slots"]
    found = con.execute(
        f"""
        SELECT pid, stack_id, a // ? AS a, e // ? AS e, sum(bytes), sum(count)
        FROM state_temporal WHERE {where} AND a // ? < e // ? GROUP BY ALL
        UNION ALL
        SELECT pid, stack_id, {_slot_sql("ts_ns")} AS a, ? AS e, sum(size), count(*)
        FROM live WHERE {where} GROUP BY ALL
        ORDER BY 1, 2, 3, 4""",
        [
            layout["merge"],
            layout["merge"],
            *params,
            layout["merge"],
            layout["merge"],
            first,
            first,
            slot_ns,
            slots - 1,
            slots,
            *params,
        ],
    ).fetchall()
    return _cells(found)


def log_temporal_cells(
    con: duckdb.DuckDBPyConnection, opts: FlameOptions, layout: dict[str, int]
) -> list[Cell]:
    """The same cells from the log's matched blocks (any filter; one pass over the events).

    ``a``: the slot of the allocation; ``e``: the slot of its end, ``slots`` when it is
    alive at the end of the log. Blocks ended in their own slot never count and are left
    out.
    """
    first, slot_ns, slots = layout["first_ts_ns"], layout["slot_ns"], layout["slots"]
    where, params = _where(opts, tid_col="tid")
    found = con.execute(
        f"""
        WITH b AS (
            SELECT pid, stack_id, size, {_slot_sql("ts_ns")} AS a,
                CASE WHEN end_ts_ns IS NULL THEN ? ELSE {_slot_sql("end_ts_ns")} END AS e
            FROM _allocations WHERE {where})
        SELECT pid, stack_id, a, e, sum(size), count(*) FROM b WHERE e > a
        GROUP BY ALL ORDER BY pid, stack_id, a, e""",
        [first, first, slot_ns, slots - 1, slots, first, first, slot_ns, slots - 1, *params],
    ).fetchall()
    return _cells(found)


def live_curve(
    con: duckdb.DuckDBPyConnection, pid: int | None, first: int
) -> dict[str, list[float]]:
    """Live bytes over time (seconds since ``first``) from the state's fine timeline."""
    if pid is None:
        found = con.execute("""SELECT a.origin_ts_ns + t.bucket * a.width_ns,
            a.width_ns, t.live_bytes, t.max_live_bytes
            FROM state_timeline_all t, state_all a ORDER BY t.bucket""").fetchall()
    else:
        found = con.execute(
            """SELECT start_ts_ns, width_ns, live_bytes, max_live_bytes
            FROM timeline WHERE pid = ? ORDER BY start_ts_ns""",
            [pid],
        ).fetchall()
    return {
        "t": [round((int(s) + int(w) - first) / 1e9, 9) for s, w, _, _ in found],
        "bytes": [int(v) for _, _, v, _ in found],
        "max_bytes": [int(m) for _, _, _, m in found],
    }


class _Tree:
    """The merged call tree under construction."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []
        self.frame_ids: dict[Frame, int] = {}
        self.parent: list[int] = [-1]
        self.frame: list[int] = [-1]
        self.children: dict[tuple[int, int], int] = {}

    def frame_id(self, frame: Frame) -> int:
        found = self.frame_ids.get(frame)
        if found is None:
            found = self.frame_ids[frame] = len(self.frames)
            self.frames.append([frame[0], frame[1], frame[2]])
        return found

    def child(self, parent: int, frame: Frame) -> int:
        key = (parent, self.frame_id(frame))
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = len(self.parent)
            self.parent.append(parent)
            self.frame.append(key[1])
        return found


def _process_frame(pid: int, argv: Any) -> Frame:
    program = " ".join(str(a) for a in argv) if isinstance(argv, list | tuple) else ""
    return (f"process {pid}", program[:200], 0)


def build_tree(
    con: duckdb.DuckDBPyConnection,
    sites: Iterable[tuple[int, int]],
    max_sites: int = MAX_SITES,
    weight: dict[tuple[int, int], int] | None = None,
    max_nodes: int = MAX_NODES,
) -> tuple[_Tree, dict[tuple[int, int], int]]:
    """The call tree of ``sites`` and the node of each site.

    The heaviest sites (by ``weight``) get their own path, at most ``max_sites`` of them
    and ``max_nodes`` nodes in all; the others of each process share one
    ``(N smaller sites)`` node.
    """
    stacks = resolver(con)
    keys = sorted(set(sites))
    pids = sorted({pid for pid, _ in keys})
    argv = dict(con.execute("SELECT pid, argv FROM processes").fetchall()) if len(pids) > 1 else {}
    tree = _Tree()
    tops = {
        pid: tree.child(0, _process_frame(pid, argv.get(pid))) if len(pids) > 1 else 0
        for pid in pids
    }
    ranked = sorted(keys, key=lambda k: (-(weight or {}).get(k, 0), k))
    node_of: dict[tuple[int, int], int] = {}
    rest: list[tuple[int, int]] = []
    for pid, stack_id in ranked:
        frames = stacks.frames(pid, stack_id) if stack_id else ()
        if len(node_of) >= max_sites or len(tree.parent) + len(frames) > max_nodes:
            rest.append((pid, stack_id))
            continue
        node = tops[pid]
        for frame in reversed(frames or (NO_STACK,)):
            node = tree.child(node, frame)
        node_of[(pid, stack_id)] = node
    per_pid: dict[int, list[tuple[int, int]]] = {}
    for key in rest:
        per_pid.setdefault(key[0], []).append(key)
    for pid, group in per_pid.items():
        node = tree.child(tops[pid], (f"({len(group)} smaller sites)", "", 0))
        for key in group:
            node_of[key] = node
    return tree, node_of


def _view(label: str, values: SiteValues, node_of: dict[tuple[int, int], int]) -> dict[str, Any]:
    per_node: dict[int, list[int]] = {}
    for key, (nbytes, blocks) in values.items():
        acc = per_node.setdefault(node_of[key], [0, 0])
        acc[0] += nbytes
        acc[1] += blocks
    nodes = sorted(per_node)
    return {
        "label": label,
        "node": nodes,
        "bytes": [per_node[n][0] for n in nodes],
        "blocks": [per_node[n][1] for n in nodes],
        "total": sum(v[0] for v in per_node.values()),
    }


def _check(con: duckdb.DuckDBPyConnection, opts: FlameOptions) -> None:
    if (
        opts.pid is not None
        and not con.execute("SELECT 1 FROM state_processes WHERE pid = ?", [opts.pid]).fetchone()
    ):
        pids = [
            r[0] for r in con.execute("SELECT pid FROM state_processes ORDER BY pid").fetchall()
        ]
        raise FlameError(
            f"no memory events of pid {opts.pid} in this log "
            f"(pids: {', '.join(map(str, pids)) or 'none'})"
        )
    if (
        opts.tid is not None
        and not con.execute(
            "SELECT 1 FROM thread_totals WHERE tid = ? AND (? IS NULL OR pid = ?)",
            [opts.tid, opts.pid, opts.pid],
        ).fetchone()
    ):
        raise FlameError(
            f"no allocations of thread {opts.tid} in this log "
            '(see `memscope query LOG "select * from threads"`)'
        )
    if isinstance(opts.instant, str) and opts.instant not in ("peak", "end"):
        raise FlameError(f"--at {opts.instant!r}: expected peak, end or seconds")


def build_flame(con: duckdb.DuckDBPyConnection, opts: FlameOptions | None = None) -> dict[str, Any]:
    """The flame graph model of the log behind ``con`` (see the module doc).

    ``con`` holds the analysis state (``use_state``); when ``opts.needs_log`` its blocks
    must also be matched (:func:`memscope.analyzers.views.connect` with ``matched=True``).
    """
    opts = opts or FlameOptions()
    _check(con, opts)
    first = _origin(con, opts.pid)
    instant = opts.instant
    views_values: dict[str, tuple[str, SiteValues]] = {}
    peak_ts = peak_instant(con, opts.pid)
    if instant == "peak":
        label = "at the peak" + ("" if peak_ts is None else f" (+{(peak_ts - first) / 1e9:.3f} s)")
        values = (
            log_values(con, opts, peak_ts)
            if opts.tid is not None and peak_ts is not None
            else state_values(con, opts)
        )
        views_values["peak"] = (label, values)
        views_values["end"] = (
            "alive at the end",
            state_values(con, FlameOptions(at="end", pid=opts.pid, tid=opts.tid)),
        )
    elif instant == "end":
        views_values["end"] = (
            "alive at the end (leaks)" if opts.leaks else "alive at the end",
            state_values(con, opts),
        )
    else:
        seconds = float(instant)
        last = _span(con, opts.pid)[1]
        if seconds < 0 or first + seconds * 1e9 > last:
            raise FlameError(f"--at {seconds:g}: the run lasted {max(0, last - first) / 1e9:.3f} s")
        views_values["at"] = (
            f"at +{seconds:.3f} s",
            log_values(con, opts, first + int(round(seconds * 1e9))),
        )
    temporal: dict[str, Any] | None = None
    cells: list[Cell] = []
    if opts.temporal:
        layout = temporal_layout(con, opts.slots)
        cells = (
            log_temporal_cells(con, opts, layout)
            if opts.tid is not None
            else state_temporal_cells(con, opts, layout)
        )
        temporal = {k: layout[k] for k in ("slots", "slot_ns", "first_ts_ns")}
        temporal["curve"] = live_curve(con, opts.pid, layout["first_ts_ns"])
    weight: dict[tuple[int, int], int] = {}
    for _, values in views_values.values():
        for key, (nbytes, _) in values.items():
            weight[key] = max(weight.get(key, 0), nbytes)
    for pid, stack_id, _, _, nbytes, _ in cells:
        weight[(pid, stack_id)] = max(weight.get((pid, stack_id), 0), nbytes)
    tree, node_of = build_tree(con, weight, opts.max_sites, weight, opts.max_nodes)
    model: dict[str, Any] = {
        "format": FLAME_FORMAT,
        "first_ts_ns": first,
        "frames": tree.frames,
        "parent": tree.parent,
        "frame": tree.frame,
        "views": {
            name: _view(label, values, node_of) for name, (label, values) in views_values.items()
        },
        "default": next(iter(views_values)),
        "filters": {"pid": opts.pid, "tid": opts.tid},
    }
    if temporal is not None:
        temporal["cells"] = {
            "node": [node_of[(c[0], c[1])] for c in cells],
            "a": [c[2] for c in cells],
            "e": [c[3] for c in cells],
            "bytes": [c[4] for c in cells],
            "blocks": [c[5] for c in cells],
        }
        model["temporal"] = temporal
    return model
