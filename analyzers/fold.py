"""The streaming fold: memory events folded once into a compact analysis state.

This module is the **specification** of the fold and its pure-Python twin, :class:`PyFold`.
The fast path is the C type ``memscope.analyzers._fold.Fold``, which must give exactly the
same :meth:`export` for the same calls (``tests/unit/test_fold.py`` checks them side by side on
random logs, as the rec1 decoder's twins are checked).

The state is bounded by the blocks alive, the addresses of the heap (one entry per address
ever allocated), the distinct allocation sites, threads and sizes -- never by the number of
events. Nothing in it is estimated except where named (sampled processes' ``w_*`` figures).

Calls
-----
``Fold(**params)``
    a new, empty state (parameters: :class:`FoldParams`).
``fold.set_sampling(pid, sample_bytes)``
    the process samples by byte volume (``mode = "sampled"``): its ``w_*`` figures weight
    each block by ``1 / p``, ``p = 1 - exp(-max(size, 1) / sample_bytes)``.
``fold.watch(pid, address, ts_ns)``
    a tracked variable's block: its ends (frees) are recorded in ``deaths``.
``fold.feed(pid, tid, seq, ts_ns, kind, domain, address, old_address, size, stack_id)``
    numpy arrays of equal length (dtypes of :data:`memscope.protocol.log_schema.MEMORY`), in
    **processing order**: events are folded one after another in the order given (the
    caller sorts each window of the log by time, :mod:`memscope.analyzers.state`).
``fold.export(tables=None)``
    every table below (or only those named in ``tables``) as ``{table: {column: numpy
    array}}``, rows in the documented order.
``Fold.restore(params, tables)``
    a state equal to the one that exported ``tables`` (the tables hold no sampling of a pid
    without events yet: call :meth:`set_sampling` again for such a pid).

Processing one event
--------------------
Events with ``address == 0`` are ignored (a realloc with only ``old_address`` ends that
block). Otherwise the event's process ``P`` (created on first sight; its time origin is that
event's ``ts_ns``) gets ``first_ts_ns``/``last_ts_ns`` updated and the event's fine time
bucket ``b = (ts - origin) // width`` (``0`` when ``ts < origin``). While ``b >=
timeline_buckets``, the process's ``width`` doubles: adjacent buckets merge (counts add;
``live_bytes`` is the later bucket's when it had events, else the earlier's; ``max_live_bytes``
the larger) and every site series of the process halves (below), once per doubling. The
all-process timeline (``timeline_all``, origin = the first event of all) does the same with its
own width.

* **free**: ``end(address, FREE)``.
* **realloc**: ``end(old_address, REALLOC)`` when ``old_address != 0``, then
  ``start(address)`` when ``address != 0``.
* **alloc / calloc**: ``start(address)``.
* Other kinds are ignored (but still count in ``first_ts_ns``/``last_ts_ns``).

After the event: the process's fine bucket and the all-process bucket count one event and
set ``live_bytes`` (the process's / all processes' live bytes now) and ``max_live_bytes``.

``start``: when the address holds a **live** block, that block ends as *reused* (its free was
not recorded): ``reused``/``reused_bytes`` count it (process and site), and it leaves every
live figure (process, site, thread, all processes) but is **not** a free. The new block is
then live: counts ``allocations``/``bytes_allocated``/``live_blocks``/``live_bytes`` of the
process, its site ``(pid, stack_id, domain)`` and its thread ``(pid, tid)``; ``sizes[(pid, size)]``
counts it; the timeline bucket counts it in ``allocations``/``bytes_allocated``;
``first_alloc_ts_ns``/``last_alloc_ts_ns`` move. A block of at least ``oversized_bytes``
counts in ``oversized`` and is kept in the ``oversized`` table (first ``keep_findings`` per
process) with ``free_ts_ns`` set when it ends. Then the **peak** checks: when the process's
live bytes exceed its ``peak_bytes``, the peak moves there with ``peak_ts_ns = ts``; when the
live bytes of all processes together exceed the all-process peak, likewise. (Ends come before
starts: a realloc's old block has left first.)

``end``: the address's entry decides.

* **live block** (matched): ``frees``/``bytes_freed`` count it (process, its site, the thread
  that *allocated* it), it leaves the live figures, the timeline bucket of the end counts
  ``frees``/``bytes_freed``; its lifetime ``ts - alloc ts`` goes to ``lifetimes_hist``
  (bucket = ``int.bit_length(max(lifetime, 0))``) and, when ``<= temporary_ns``, to
  ``temporary_count``/``temporary_bytes`` (process and site). A different domain than the
  block's is a **domain mismatch** (counted; kept in ``findings`` as ``domain_mismatch``). The
  entry becomes *dead, repeatable*, remembering the end (time, kind, domain, thread, stack).
* **dead, repeatable** (the address's last event ended a block): a **repeated end** (the
  double-free pattern): ``unmatched_frees`` and ``repeated_ends`` count it; kept in
  ``findings`` as ``repeated_end`` with the allocation and the previous end. The entry
  stays dead but no longer repeatable (and remembers this end).
* **otherwise** (no entry, or dead and not repeatable): an **unmatched** end, counted in
  ``unmatched_frees``. A *free* (not a realloc) of an unmatched address is checked for
  pointing strictly inside a live block of the same pid and domain allocated before it
  (``interior_checked``, at most ``max_interior_checks`` per process; beyond that
  ``interior_unchecked`` counts them): candidate block starts are the 16-byte-aligned
  addresses below it within ``interior_probe_bytes`` plus every live block larger than
  ``interior_probe_bytes``; of those containing it, the one with the highest start is
  reported (``interior_frees``; ``findings`` as ``interior_free``). No entry is created.

Any *free* at a watched address (matched or not) appends ``(pid, address, ts)`` to
``deaths``. :meth:`watch` of an address whose entry is dead with a free at or after
``ts_ns`` appends that death at once (the variable row arrived after its free).

Per-site live bytes over time (``sites.series``): ``site_slots`` slots per process, each
``timeline_buckets // site_slots`` fine buckets wide; slot ``s`` holds the site's live bytes at
the end of the slot (slots after the site's last change carry its current value). A change
in a slot before the site's last changed slot is applied to that last slot.

Per-site temporal cells (``temporal``), for the temporal flame graph: the all-process
timeline is also cut into ``temporal_slots(params)`` = ``min(64, timeline_buckets)`` coarse
**temporal slots**, each ``timeline_buckets // temporal_slots`` fine buckets of
``timeline_all`` wide (slot of ``ts`` = its ``timeline_all`` bucket // that ratio; ``0``
before the origin). Whenever a live block leaves (a matched end or a reuse), the cell
``(pid, stack_id, domain, a, e)`` of its site counts it (``count`` 1, ``bytes`` its size),
``a`` the temporal slot of its allocation and ``e`` that of its end, **only when** ``e > a``
(a block ended within its own slot is never alive at the end of a window holding its
allocation). When the all-process width doubles, every cell moves to ``(a // 2, e // 2)``
(cells meeting add up; those with ``a == e`` then are dropped), once per doubling -- before
the event's block ends are counted. Blocks still alive are not in ``temporal`` (they are in
``blocks``). The cells are bounded by sites x slots x slots, never by events.

Peak attribution is kept lazily: each site remembers its live blocks and bytes as they were
when its process reached its peak (``peak_blocks``/``peak_bytes``) and when all processes
together did (``all_peak_blocks``/``all_peak_bytes``), saved on the site's first change after
each new peak.

Tables of :meth:`export`
------------------------
Times are ns; ``-1`` means "none" in ``*_ts_ns`` columns.

``processes``: pid (ascending), sample_bytes, origin_ts_ns, width_ns, first_ts_ns,
last_ts_ns, first_alloc_ts_ns, last_alloc_ts_ns, events, allocations, bytes_allocated, frees,
bytes_freed, live_blocks, live_bytes, reused, reused_bytes, unmatched_frees, repeated_ends,
domain_mismatches, interior_frees, interior_checked, interior_unchecked, oversized,
temporary_count, temporary_bytes, peak_bytes, peak_ts_ns, w_allocations, w_bytes_allocated,
w_frees, w_bytes_freed, w_live_blocks, w_live_bytes (floats), w_live_rounded,
w_peak_bytes, w_peak_ts_ns (ints: the weighted running sum of ``floor(size / p + 0.5)``).

``all``: one row: origin_ts_ns, width_ns, live_bytes, peak_bytes, peak_ts_ns,
w_live_rounded, w_peak_bytes, w_peak_ts_ns (sampled processes' blocks weighted, others not).

``sites``: pid, stack_id, domain (ascending): allocations, bytes_allocated, frees, bytes_freed,
live_blocks, live_bytes, reused, temporary_count, temporary_bytes, peak_blocks, peak_bytes,
all_peak_blocks, all_peak_bytes, last_slot, series (int64 ``[n, site_slots]``).

``threads``: pid, tid (ascending): allocations, bytes_allocated, frees, live_blocks,
live_bytes.

``sizes``: pid, size (ascending): count.

``timeline`` / ``timeline_all``: (pid,) bucket (ascending), only buckets with events:
events, allocations, frees, bytes_allocated, bytes_freed, live_bytes, max_live_bytes.

``lifetimes``: pid, bucket (ascending): count, bytes.

``blocks``: every address entry, pid, address (ascending): state (1 live, 2 dead repeatable,
3 dead), kind (the allocating event's), domain, tid, seq, ts_ns, size, stack_id (the
allocation's), end_ts_ns, end_kind, end_domain, end_tid, end_stack_id (the last end, -1/0
while live).

``findings``: in the order found: type (1 domain_mismatch, 2 repeated_end, 3 interior_free),
pid, tid, seq, ts_ns, address, kind, domain, stack_id (the end event's), alloc_ts_ns,
alloc_domain, alloc_tid, alloc_stack_id, size (the block's; for interior_free the containing
block's, whose start is ``block_address``), prev_end_ts_ns, prev_end_tid,
prev_end_stack_id, prev_end_kind (repeated_end only, else -1/0). At most ``keep_findings``
of each type per process are kept; the counts in ``processes`` cover all.

``oversized``: in the order found: pid, tid, ts_ns, address, size, domain, stack_id,
free_ts_ns.

``deaths``: in the order found: pid, address, ts_ns.

``watched``: pid, address (ascending): ts_ns (the earliest watch).

``temporal``: pid, stack_id, domain, a, e (ascending): bytes, count (see above).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from memscope.protocol.wire import KIND_ALLOC, KIND_CALLOC, KIND_FREE, KIND_REALLOC

#: ``findings.type`` codes.
DOMAIN_MISMATCH, REPEATED_END, INTERIOR_FREE = 1, 2, 3
FINDING_TYPES = {
    DOMAIN_MISMATCH: "domain_mismatch",
    REPEATED_END: "repeated_end",
    INTERIOR_FREE: "interior_free",
}
#: ``blocks.state`` codes.
LIVE, DEAD_REPEATABLE, DEAD = 1, 2, 3
#: The 16-byte alignment of block starts that the interior-free probe assumes.
PROBE_ALIGN = 16
#: Lifetime histogram buckets (``bit_length`` of a 64-bit lifetime).
LIFETIME_BUCKETS = 64


@dataclass(frozen=True)
class FoldParams:
    """The fold's parameters (fixed for the life of a state; kept in its checkpoint).

    Attributes:
        temporary_ns: a block freed within this many ns of its allocation is temporary.
        oversized_bytes: a single block at least this large is kept in ``oversized``.
        timeline_buckets: fine time buckets per process (a power of two).
        site_slots: per-site live-bytes slots per process (a power of two dividing
            ``timeline_buckets``).
        initial_width_ns: the fine bucket width a process starts with (doubles as needed).
        keep_findings: findings of each type (and oversized blocks) kept per process.
        interior_probe_bytes: how far below an unmatched free the probe looks for the start
            of a block holding it (larger live blocks are all checked).
        max_interior_checks: unmatched frees checked per process.
    """

    temporary_ns: int = 1_000_000
    oversized_bytes: int = 100 * 1024 * 1024
    timeline_buckets: int = 1024
    site_slots: int = 32
    initial_width_ns: int = 1
    keep_findings: int = 1000
    interior_probe_bytes: int = 4096
    max_interior_checks: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("timeline_buckets", "site_slots", "initial_width_ns"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                raise ValueError(f"fold parameter {name} must be a power of two, not {value}")
        if self.timeline_buckets % self.site_slots or self.site_slots > self.timeline_buckets:
            raise ValueError("fold parameter site_slots must divide timeline_buckets")
        if self.interior_probe_bytes < PROBE_ALIGN or self.interior_probe_bytes % PROBE_ALIGN:
            raise ValueError(f"interior_probe_bytes must be a multiple of {PROBE_ALIGN}")

    def as_dict(self) -> dict[str, int]:
        """The parameters as plain ints (for checkpoints and the C type)."""
        return {k: int(v) for k, v in asdict(self).items()}


# -- column layouts of the exported tables (name -> dtype), in column order -------------------
_I8, _U8, _U4, _U1, _F8 = "<i8", "<u8", "<u4", "u1", "<f8"

PROCESS_COLUMNS: dict[str, str] = {
    "pid": _U4,
    "sample_bytes": _I8,
    "origin_ts_ns": _I8,
    "width_ns": _I8,
    "first_ts_ns": _I8,
    "last_ts_ns": _I8,
    "first_alloc_ts_ns": _I8,
    "last_alloc_ts_ns": _I8,
    "events": _I8,
    "allocations": _I8,
    "bytes_allocated": _I8,
    "frees": _I8,
    "bytes_freed": _I8,
    "live_blocks": _I8,
    "live_bytes": _I8,
    "reused": _I8,
    "reused_bytes": _I8,
    "unmatched_frees": _I8,
    "repeated_ends": _I8,
    "domain_mismatches": _I8,
    "interior_frees": _I8,
    "interior_checked": _I8,
    "interior_unchecked": _I8,
    "oversized": _I8,
    "temporary_count": _I8,
    "temporary_bytes": _I8,
    "peak_bytes": _I8,
    "peak_ts_ns": _I8,
    "w_allocations": _F8,
    "w_bytes_allocated": _F8,
    "w_frees": _F8,
    "w_bytes_freed": _F8,
    "w_live_blocks": _F8,
    "w_live_bytes": _F8,
    "w_live_rounded": _I8,
    "w_peak_bytes": _I8,
    "w_peak_ts_ns": _I8,
}
ALL_COLUMNS: dict[str, str] = {
    "origin_ts_ns": _I8,
    "width_ns": _I8,
    "live_bytes": _I8,
    "peak_bytes": _I8,
    "peak_ts_ns": _I8,
    "w_live_rounded": _I8,
    "w_peak_bytes": _I8,
    "w_peak_ts_ns": _I8,
}
SITE_COLUMNS: dict[str, str] = {
    "pid": _U4,
    "stack_id": _U4,
    "domain": _U1,
    "allocations": _I8,
    "bytes_allocated": _I8,
    "frees": _I8,
    "bytes_freed": _I8,
    "live_blocks": _I8,
    "live_bytes": _I8,
    "reused": _I8,
    "temporary_count": _I8,
    "temporary_bytes": _I8,
    "peak_blocks": _I8,
    "peak_bytes": _I8,
    "all_peak_blocks": _I8,
    "all_peak_bytes": _I8,
    "last_slot": _I8,
}  # plus "series": int64 [n, site_slots]
THREAD_COLUMNS: dict[str, str] = {
    "pid": _U4,
    "tid": _U8,
    "allocations": _I8,
    "bytes_allocated": _I8,
    "frees": _I8,
    "live_blocks": _I8,
    "live_bytes": _I8,
}
SIZE_COLUMNS: dict[str, str] = {"pid": _U4, "size": _U8, "count": _I8}
_BUCKET_COLUMNS: dict[str, str] = {
    "bucket": _I8,
    "events": _I8,
    "allocations": _I8,
    "frees": _I8,
    "bytes_allocated": _I8,
    "bytes_freed": _I8,
    "live_bytes": _I8,
    "max_live_bytes": _I8,
}
TIMELINE_COLUMNS: dict[str, str] = {"pid": _U4, **_BUCKET_COLUMNS}
TIMELINE_ALL_COLUMNS: dict[str, str] = dict(_BUCKET_COLUMNS)
LIFETIME_COLUMNS: dict[str, str] = {"pid": _U4, "bucket": _I8, "count": _I8, "bytes": _I8}
BLOCK_COLUMNS: dict[str, str] = {
    "pid": _U4,
    "address": _U8,
    "state": _U1,
    "kind": _U1,
    "domain": _U1,
    "tid": _U8,
    "seq": _U8,
    "ts_ns": _I8,
    "size": _U8,
    "stack_id": _U4,
    "end_ts_ns": _I8,
    "end_kind": _U1,
    "end_domain": _U1,
    "end_tid": _U8,
    "end_stack_id": _U4,
}
FINDING_COLUMNS: dict[str, str] = {
    "type": _U1,
    "pid": _U4,
    "tid": _U8,
    "seq": _U8,
    "ts_ns": _I8,
    "address": _U8,
    "kind": _U1,
    "domain": _U1,
    "stack_id": _U4,
    "alloc_ts_ns": _I8,
    "alloc_domain": _U1,
    "alloc_tid": _U8,
    "alloc_stack_id": _U4,
    "size": _U8,
    "block_address": _U8,
    "prev_end_ts_ns": _I8,
    "prev_end_tid": _U8,
    "prev_end_stack_id": _U4,
    "prev_end_kind": _U1,
}
OVERSIZED_COLUMNS: dict[str, str] = {
    "pid": _U4,
    "tid": _U8,
    "ts_ns": _I8,
    "address": _U8,
    "size": _U8,
    "domain": _U1,
    "stack_id": _U4,
    "free_ts_ns": _I8,
}
DEATH_COLUMNS: dict[str, str] = {"pid": _U4, "address": _U8, "ts_ns": _I8}
TEMPORAL_COLUMNS: dict[str, str] = {
    "pid": _U4,
    "stack_id": _U4,
    "domain": _U1,
    "a": _I8,
    "e": _I8,
    "bytes": _I8,
    "count": _I8,
}
WATCH_COLUMNS: dict[str, str] = {"pid": _U4, "address": _U8, "ts_ns": _I8}

#: table -> its column layout (``sites`` also has ``series``).
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "processes": PROCESS_COLUMNS,
    "all": ALL_COLUMNS,
    "sites": SITE_COLUMNS,
    "threads": THREAD_COLUMNS,
    "sizes": SIZE_COLUMNS,
    "timeline": TIMELINE_COLUMNS,
    "timeline_all": TIMELINE_ALL_COLUMNS,
    "lifetimes": LIFETIME_COLUMNS,
    "blocks": BLOCK_COLUMNS,
    "findings": FINDING_COLUMNS,
    "oversized": OVERSIZED_COLUMNS,
    "deaths": DEATH_COLUMNS,
    "watched": WATCH_COLUMNS,
    "temporal": TEMPORAL_COLUMNS,
}

#: Temporal slots at most (see the module docstring).
MAX_TEMPORAL_SLOTS = 64


def temporal_slots(params: FoldParams) -> int:
    """Temporal slots of the all-process timeline: ``min(64, timeline_buckets)``."""
    return min(MAX_TEMPORAL_SLOTS, params.timeline_buckets)


def sample_weight(size: int, sample_bytes: int) -> float:
    """``1 / p`` of a sampled block: ``p = 1 - exp(-max(size, 1) / sample_bytes)``."""
    return 1.0 / (1.0 - math.exp(-float(max(size, 1)) / float(sample_bytes)))


def weighted_bytes(size: int, sample_bytes: int) -> int:
    """The bytes a sampled block stands for, rounded: ``floor(size / p + 0.5)``."""
    return int(math.floor(float(size) * sample_weight(size, sample_bytes) + 0.5))


# -- the pure-Python twin ---------------------------------------------------------------------


class _Bucket:
    __slots__ = (
        "events",
        "allocations",
        "frees",
        "bytes_allocated",
        "bytes_freed",
        "live_bytes",
        "max_live_bytes",
    )

    def __init__(self) -> None:
        self.events = self.allocations = self.frees = 0
        self.bytes_allocated = self.bytes_freed = 0
        self.live_bytes = self.max_live_bytes = 0

    def merge(self, later: _Bucket) -> None:
        if later.events:
            self.live_bytes = later.live_bytes
        self.max_live_bytes = (
            max(self.max_live_bytes, later.max_live_bytes) if self.events else later.max_live_bytes
        )
        self.events += later.events
        self.allocations += later.allocations
        self.frees += later.frees
        self.bytes_allocated += later.bytes_allocated
        self.bytes_freed += later.bytes_freed


class _Timeline:
    """Fine buckets from an origin; the width doubles when a bucket index would overflow."""

    def __init__(self, origin: int, width: int, n: int) -> None:
        self.origin, self.width, self.n = origin, width, n
        self.buckets: dict[int, _Bucket] = {}

    def index(self, ts: int) -> tuple[int, int]:
        """(bucket of ``ts``, how many times the width doubled to fit it)."""
        if ts < self.origin:
            return 0, 0
        doubled = 0
        while (ts - self.origin) // self.width >= self.n:
            self._double()
            doubled += 1
        return (ts - self.origin) // self.width, doubled

    def _double(self) -> None:
        merged: dict[int, _Bucket] = {}
        for b in sorted(self.buckets):
            target = merged.get(b // 2)
            if target is None:
                merged[b // 2] = self.buckets[b]
            else:
                target.merge(self.buckets[b])
        self.buckets = merged
        self.width *= 2

    def bucket(self, b: int) -> _Bucket:
        found = self.buckets.get(b)
        if found is None:
            found = self.buckets[b] = _Bucket()
        return found


class _Process:
    __slots__ = (
        "pid",
        "sample_bytes",
        "timeline",
        "first_ts",
        "last_ts",
        "first_alloc_ts",
        "last_alloc_ts",
        "c",
        "peak_bytes",
        "peak_ts",
        "peak_version",
        "w",
        "w_live_rounded",
        "w_peak_bytes",
        "w_peak_ts",
        "kept",
        "large",
    )

    def __init__(self, pid: int, ts: int, params: FoldParams, sample_bytes: int) -> None:
        self.pid = pid
        self.sample_bytes = sample_bytes
        self.timeline = _Timeline(ts, params.initial_width_ns, params.timeline_buckets)
        self.first_ts = self.last_ts = ts
        self.first_alloc_ts = self.last_alloc_ts = -1
        self.c = dict.fromkeys(
            (
                "events",
                "allocations",
                "bytes_allocated",
                "frees",
                "bytes_freed",
                "live_blocks",
                "live_bytes",
                "reused",
                "reused_bytes",
                "unmatched_frees",
                "repeated_ends",
                "domain_mismatches",
                "interior_frees",
                "interior_checked",
                "interior_unchecked",
                "oversized",
                "temporary_count",
                "temporary_bytes",
            ),
            0,
        )
        self.peak_bytes, self.peak_ts, self.peak_version = 0, -1, 0
        self.w = dict.fromkeys(
            (
                "w_allocations",
                "w_bytes_allocated",
                "w_frees",
                "w_bytes_freed",
                "w_live_blocks",
                "w_live_bytes",
            ),
            0.0,
        )
        self.w_live_rounded, self.w_peak_bytes, self.w_peak_ts = 0, 0, -1
        self.kept = {DOMAIN_MISMATCH: 0, REPEATED_END: 0, INTERIOR_FREE: 0, 0: 0}
        self.large: set[int] = set()  # addresses of live blocks > interior_probe_bytes


class _Site:
    __slots__ = (
        "allocations",
        "bytes_allocated",
        "frees",
        "bytes_freed",
        "live_blocks",
        "live_bytes",
        "reused",
        "temporary_count",
        "temporary_bytes",
        "peak_blocks",
        "peak_bytes",
        "pv",
        "all_peak_blocks",
        "all_peak_bytes",
        "av",
        "last_slot",
        "series",
    )

    def __init__(self, slots: int, pv: int, av: int) -> None:
        self.allocations = self.bytes_allocated = self.frees = self.bytes_freed = 0
        self.live_blocks = self.live_bytes = self.reused = 0
        self.temporary_count = self.temporary_bytes = 0
        self.peak_blocks = self.peak_bytes = self.all_peak_blocks = self.all_peak_bytes = 0
        self.pv, self.av = pv, av
        self.last_slot = -1
        self.series = [0] * slots


class _Entry:
    __slots__ = (
        "state",
        "kind",
        "domain",
        "tid",
        "seq",
        "ts",
        "size",
        "stack",
        "end_ts",
        "end_kind",
        "end_domain",
        "end_tid",
        "end_stack",
    )

    def __init__(self) -> None:
        self.state = self.kind = self.domain = 0
        self.tid = self.seq = self.ts = self.size = self.stack = 0
        self.end_ts, self.end_kind, self.end_domain, self.end_tid, self.end_stack = -1, 0, 0, 0, 0


class PyFold:
    """The pure-Python twin of ``memscope.analyzers._fold.Fold`` (see the module docstring)."""

    def __init__(self, **params: int) -> None:
        self.params = FoldParams(**params)
        self._slot_div = self.params.timeline_buckets // self.params.site_slots
        self._procs: dict[int, _Process] = {}
        self._sampling: dict[int, int] = {}
        self._sites: dict[tuple[int, int, int], _Site] = {}
        self._threads: dict[tuple[int, int], list[int]] = {}
        self._sizes: dict[tuple[int, int], int] = {}
        self._lifetimes: dict[tuple[int, int], list[int]] = {}
        self._entries: dict[tuple[int, int], _Entry] = {}
        self._findings: list[dict[str, int]] = []
        self._oversized: list[dict[str, int]] = []
        self._deaths: list[tuple[int, int, int]] = []
        self._watched: dict[tuple[int, int], int] = {}
        self._all: _Timeline | None = None
        self._all_live = self._all_peak = 0
        self._all_peak_ts = -1
        self._all_version = 0
        self._all_w_live = self._all_w_peak = 0
        self._all_w_peak_ts = -1
        self._tdiv = self.params.timeline_buckets // temporal_slots(self.params)
        self._tcells: dict[tuple[int, int, int, int, int], list[int]] = {}

    # -- configuration ---------------------------------------------------------------------
    def set_sampling(self, pid: int, sample_bytes: int) -> None:
        """Weight this process's blocks as samples of ``sample_bytes`` (see the module doc)."""
        if sample_bytes <= 0:
            raise ValueError("sample_bytes must be positive")
        self._sampling[int(pid)] = int(sample_bytes)
        proc = self._procs.get(int(pid))
        if proc is not None:
            proc.sample_bytes = int(sample_bytes)

    def watch(self, pid: int, address: int, ts_ns: int) -> None:
        """Record the frees of ``address`` from now on (a tracked variable's block)."""
        key = (int(pid), int(address))
        if key in self._watched:
            self._watched[key] = min(self._watched[key], int(ts_ns))
            return
        self._watched[key] = int(ts_ns)
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.state != LIVE
            and entry.end_kind == KIND_FREE
            and entry.end_ts >= ts_ns
        ):
            self._deaths.append((key[0], key[1], entry.end_ts))

    # -- folding ---------------------------------------------------------------------------
    def feed(
        self,
        pid: Any,
        tid: Any,
        seq: Any,
        ts_ns: Any,
        kind: Any,
        domain: Any,
        address: Any,
        old_address: Any,
        size: Any,
        stack_id: Any,
    ) -> None:
        """Fold events (equal-length arrays) in the order given."""
        columns = [
            np.asarray(c).tolist()
            for c in (pid, tid, seq, ts_ns, kind, domain, address, old_address, size, stack_id)
        ]
        if len({len(c) for c in columns}) > 1:
            raise ValueError("feed: columns of different lengths")
        for row in zip(*columns, strict=True):
            self._event(*row)

    def _process(self, pid: int, ts: int) -> _Process:
        proc = self._procs.get(pid)
        if proc is None:
            proc = self._procs[pid] = _Process(pid, ts, self.params, self._sampling.get(pid, 0))
        return proc

    def _event(
        self,
        pid: int,
        tid: int,
        seq: int,
        ts: int,
        kind: int,
        domain: int,
        address: int,
        old: int,
        size: int,
        stack: int,
    ) -> None:
        if address == 0 and not (kind == KIND_REALLOC and old != 0):
            return
        proc = self._process(pid, ts)
        if self._all is None:
            self._all = _Timeline(ts, self.params.initial_width_ns, self.params.timeline_buckets)
        for _ in range(self._all.index(ts)[1]):  # the temporal cells merge first
            self._halve_cells()
        proc.first_ts = min(proc.first_ts, ts)
        proc.last_ts = max(proc.last_ts, ts)
        proc.c["events"] += 1
        b, doubled = proc.timeline.index(ts)
        for _ in range(doubled):  # once per doubling: slot s becomes s // 2 each time
            self._halve_series(proc)
        slot = b // self._slot_div
        if kind == KIND_FREE:
            self._end(proc, address, ts, tid, seq, KIND_FREE, domain, stack, b, slot)
        elif kind == KIND_REALLOC:
            if old != 0:
                self._end(proc, old, ts, tid, seq, KIND_REALLOC, domain, stack, b, slot)
            if address != 0:
                self._start(proc, address, ts, tid, seq, kind, domain, size, stack, b, slot)
        elif kind in (KIND_ALLOC, KIND_CALLOC):
            self._start(proc, address, ts, tid, seq, kind, domain, size, stack, b, slot)
        bucket = proc.timeline.bucket(b)
        self._close_bucket(bucket, proc.c["live_bytes"])
        ab, _ = self._all.index(ts)
        self._close_bucket(self._all.bucket(ab), self._all_live)

    @staticmethod
    def _close_bucket(bucket: _Bucket, live: int) -> None:
        bucket.max_live_bytes = max(bucket.max_live_bytes, live) if bucket.events else live
        bucket.events += 1
        bucket.live_bytes = live

    def _halve_cells(self) -> None:
        merged: dict[tuple[int, int, int, int, int], list[int]] = {}
        for (pid, stack, domain, a, e), (nbytes, count) in self._tcells.items():
            if a // 2 == e // 2:
                continue
            cell = merged.setdefault((pid, stack, domain, a // 2, e // 2), [0, 0])
            cell[0] += nbytes
            cell[1] += count
        self._tcells = merged

    def _tslot(self, ts: int) -> int:
        """The temporal slot of ``ts`` (the all-process timeline fits it already)."""
        assert self._all is not None
        if ts < self._all.origin:
            return 0
        return (ts - self._all.origin) // self._all.width // self._tdiv

    def _halve_series(self, proc: _Process) -> None:
        for (pid, _, _), site in self._sites.items():
            if pid != proc.pid or site.last_slot < 0:
                continue
            last = site.last_slot
            new_last = last // 2
            old = site.series
            new = [0] * len(old)
            for j in range(new_last):
                new[j] = old[2 * j + 1]
            for j in range(new_last, len(old)):
                new[j] = old[last]
            site.series, site.last_slot = new, new_last

    def _site(self, proc: _Process, stack: int, domain: int) -> _Site:
        key = (proc.pid, stack, domain)
        site = self._sites.get(key)
        if site is None:
            site = self._sites[key] = _Site(
                self.params.site_slots, proc.peak_version, self._all_version
            )
        return site

    def _touch(self, proc: _Process, site: _Site, slot: int) -> int:
        """Before a site's live figures change: save peak snapshots, fill its series."""
        if site.pv != proc.peak_version:
            site.peak_blocks, site.peak_bytes, site.pv = (
                site.live_blocks,
                site.live_bytes,
                proc.peak_version,
            )
        if site.av != self._all_version:
            site.all_peak_blocks, site.all_peak_bytes, site.av = (
                site.live_blocks,
                site.live_bytes,
                self._all_version,
            )
        if slot < site.last_slot:
            return site.last_slot
        for s in range(site.last_slot + 1, slot):
            site.series[s] = site.live_bytes
        return slot

    def _site_live(self, proc: _Process, site: _Site, slot: int, blocks: int, nbytes: int) -> None:
        slot = self._touch(proc, site, slot)
        site.live_blocks += blocks
        site.live_bytes += nbytes
        site.series[slot] = site.live_bytes
        site.last_slot = slot

    def _thread(self, pid: int, tid: int) -> list[int]:
        key = (pid, tid)
        found = self._threads.get(key)
        if found is None:
            found = self._threads[key] = [0, 0, 0, 0, 0]
        return found

    def _start(
        self,
        proc: _Process,
        address: int,
        ts: int,
        tid: int,
        seq: int,
        kind: int,
        domain: int,
        size: int,
        stack: int,
        b: int,
        slot: int,
    ) -> None:
        key = (proc.pid, address)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        elif entry.state == LIVE:
            proc.c["reused"] += 1
            proc.c["reused_bytes"] += entry.size
            self._site(proc, entry.stack, entry.domain).reused += 1
            self._leave_live_known(proc, entry, address, slot, ts)
        entry.state, entry.kind, entry.domain, entry.tid, entry.seq = LIVE, kind, domain, tid, seq
        entry.ts, entry.size, entry.stack = ts, size, stack
        entry.end_ts, entry.end_kind, entry.end_domain, entry.end_tid, entry.end_stack = (
            -1,
            0,
            0,
            0,
            0,
        )
        c = proc.c
        c["allocations"] += 1
        c["bytes_allocated"] += size
        c["live_blocks"] += 1
        c["live_bytes"] += size
        if proc.first_alloc_ts < 0 or ts < proc.first_alloc_ts:
            proc.first_alloc_ts = ts
        proc.last_alloc_ts = max(proc.last_alloc_ts, ts)
        site = self._site(proc, stack, domain)
        site.allocations += 1
        site.bytes_allocated += size
        self._site_live(proc, site, slot, 1, size)
        t = self._thread(proc.pid, tid)
        t[0] += 1
        t[1] += size
        t[3] += 1
        t[4] += size
        self._sizes[(proc.pid, size)] = self._sizes.get((proc.pid, size), 0) + 1
        self._count_in_buckets(proc, b, ts, "allocations", "bytes_allocated", size)
        if size > self.params.interior_probe_bytes:
            proc.large.add(address)
        if size >= self.params.oversized_bytes:
            c["oversized"] += 1
            if proc.kept[0] < self.params.keep_findings:
                proc.kept[0] += 1
                self._oversized.append(
                    {
                        "pid": proc.pid,
                        "tid": tid,
                        "ts_ns": ts,
                        "address": address,
                        "size": size,
                        "domain": domain,
                        "stack_id": stack,
                        "free_ts_ns": -1,
                    }
                )
        self._all_live += size
        if proc.sample_bytes:
            w = sample_weight(size, proc.sample_bytes)
            wb = weighted_bytes(size, proc.sample_bytes)
            proc.w["w_allocations"] += w
            proc.w["w_bytes_allocated"] += size * w
            proc.w["w_live_blocks"] += w
            proc.w["w_live_bytes"] += size * w
            proc.w_live_rounded += wb
            self._all_w_live += wb
            if proc.w_live_rounded > proc.w_peak_bytes:
                proc.w_peak_bytes, proc.w_peak_ts = proc.w_live_rounded, ts
        else:
            self._all_w_live += size
        if c["live_bytes"] > proc.peak_bytes:
            proc.peak_bytes, proc.peak_ts = c["live_bytes"], ts
            proc.peak_version += 1
        if self._all_live > self._all_peak:
            self._all_peak, self._all_peak_ts = self._all_live, ts
            self._all_version += 1
        if self._all_w_live > self._all_w_peak:
            self._all_w_peak, self._all_w_peak_ts = self._all_w_live, ts

    def _leave_live_known(
        self, proc: _Process, entry: _Entry, address: int, slot: int, ts: int
    ) -> None:
        """:meth:`_leave_live` for a block whose address the caller knows."""
        a, e = self._tslot(entry.ts), self._tslot(ts)
        if e > a:
            cell = self._tcells.setdefault((proc.pid, entry.stack, entry.domain, a, e), [0, 0])
            cell[0] += entry.size
            cell[1] += 1
        c = proc.c
        c["live_blocks"] -= 1
        c["live_bytes"] -= entry.size
        self._site_live(proc, self._site(proc, entry.stack, entry.domain), slot, -1, -entry.size)
        t = self._thread(proc.pid, entry.tid)
        t[3] -= 1
        t[4] -= entry.size
        self._all_live -= entry.size
        if entry.size > self.params.interior_probe_bytes:
            proc.large.discard(address)
        if proc.sample_bytes:
            w = sample_weight(entry.size, proc.sample_bytes)
            proc.w["w_live_blocks"] -= w
            proc.w["w_live_bytes"] -= entry.size * w
            wb = weighted_bytes(entry.size, proc.sample_bytes)
            proc.w_live_rounded -= wb
            self._all_w_live -= wb
        else:
            self._all_w_live -= entry.size

    def _count_in_buckets(
        self, proc: _Process, b: int, ts: int, count: str, nbytes: str, size: int
    ) -> None:
        """One block more in ``count`` and ``size`` in ``nbytes`` of both timelines' bucket."""
        assert self._all is not None
        for bucket in (proc.timeline.bucket(b), self._all.bucket(self._all.index(ts)[0])):
            setattr(bucket, count, getattr(bucket, count) + 1)
            setattr(bucket, nbytes, getattr(bucket, nbytes) + size)

    def _finding(self, proc: _Process, kind_code: int, **row: int) -> None:
        if proc.kept[kind_code] >= self.params.keep_findings:
            return
        proc.kept[kind_code] += 1
        base = dict.fromkeys(FINDING_COLUMNS, 0)
        base.update({"alloc_ts_ns": -1, "prev_end_ts_ns": -1})
        base.update(row)
        base["type"] = kind_code
        self._findings.append(base)

    def _block_finding(
        self,
        proc: _Process,
        kind_code: int,
        entry: _Entry,
        event: tuple[int, int, int, int, int, int, int],
        **extra: int,
    ) -> None:
        """A finding about an end of the block ``entry`` describes.

        ``event`` is the end's (tid, seq, ts, address, kind, domain, stack); the finding's
        allocation columns come from ``entry``.
        """
        tid, seq, ts, address, end_kind, domain, stack = event
        self._finding(
            proc,
            kind_code,
            pid=proc.pid,
            tid=tid,
            seq=seq,
            ts_ns=ts,
            address=address,
            kind=end_kind,
            domain=domain,
            stack_id=stack,
            alloc_ts_ns=entry.ts,
            alloc_domain=entry.domain,
            alloc_tid=entry.tid,
            alloc_stack_id=entry.stack,
            **extra,
        )

    def _end(
        self,
        proc: _Process,
        address: int,
        ts: int,
        tid: int,
        seq: int,
        end_kind: int,
        domain: int,
        stack: int,
        b: int,
        slot: int,
    ) -> None:
        key = (proc.pid, address)
        entry = self._entries.get(key)
        c = proc.c
        if entry is not None and entry.state == LIVE:
            self._leave_live_known(proc, entry, address, slot, ts)
            size = entry.size
            c["frees"] += 1
            c["bytes_freed"] += size
            site = self._site(proc, entry.stack, entry.domain)
            site.frees += 1
            site.bytes_freed += size
            self._thread(proc.pid, entry.tid)[2] += 1
            lifetime = ts - entry.ts
            if lifetime <= self.params.temporary_ns:
                c["temporary_count"] += 1
                c["temporary_bytes"] += size
                site.temporary_count += 1
                site.temporary_bytes += size
            lkey = (proc.pid, max(lifetime, 0).bit_length())
            hist = self._lifetimes.setdefault(lkey, [0, 0])
            hist[0] += 1
            hist[1] += size
            self._count_in_buckets(proc, b, ts, "frees", "bytes_freed", size)
            if proc.sample_bytes:
                w = sample_weight(size, proc.sample_bytes)
                proc.w["w_frees"] += w
                proc.w["w_bytes_freed"] += size * w
            if domain != entry.domain:
                c["domain_mismatches"] += 1
                event = (tid, seq, ts, address, end_kind, domain, stack)
                self._block_finding(
                    proc, DOMAIN_MISMATCH, entry, event, size=size, block_address=address
                )
            if size >= self.params.oversized_bytes:
                for row in self._oversized:
                    if (
                        row["pid"] == proc.pid
                        and row["address"] == address
                        and row["ts_ns"] == entry.ts
                        and row["free_ts_ns"] < 0
                    ):
                        row["free_ts_ns"] = ts
                        break
            entry.state = DEAD_REPEATABLE
        elif entry is not None and entry.state == DEAD_REPEATABLE:
            c["unmatched_frees"] += 1
            c["repeated_ends"] += 1
            self._block_finding(
                proc,
                REPEATED_END,
                entry,
                (tid, seq, ts, address, end_kind, domain, stack),
                size=entry.size,
                block_address=address,
                prev_end_ts_ns=entry.end_ts,
                prev_end_tid=entry.end_tid,
                prev_end_stack_id=entry.end_stack,
                prev_end_kind=entry.end_kind,
            )
            entry.state = DEAD
        else:
            c["unmatched_frees"] += 1
            if end_kind == KIND_FREE:
                self._interior(proc, address, ts, tid, seq, domain, stack)
            entry = None
        if entry is not None:
            entry.end_ts, entry.end_kind, entry.end_domain = ts, end_kind, domain
            entry.end_tid, entry.end_stack = tid, stack
        if end_kind == KIND_FREE and key in self._watched:
            self._deaths.append((proc.pid, address, ts))

    def _interior(
        self, proc: _Process, address: int, ts: int, tid: int, seq: int, domain: int, stack: int
    ) -> None:
        c = proc.c
        if c["interior_checked"] >= self.params.max_interior_checks:
            c["interior_unchecked"] += 1
            return
        c["interior_checked"] += 1
        found: tuple[int, _Entry] | None = None
        start = (address - 1) & ~(PROBE_ALIGN - 1)
        lowest = address - self.params.interior_probe_bytes
        candidate = start
        while candidate >= lowest and candidate >= 0:
            entry = self._entries.get((proc.pid, candidate))
            if entry is not None and self._holds(entry, candidate, address, domain, ts):
                found = (candidate, entry)
                break
            candidate -= PROBE_ALIGN
        for big in proc.large:
            if found is not None and big <= found[0]:
                continue
            entry = self._entries[(proc.pid, big)]
            if self._holds(entry, big, address, domain, ts):
                found = (big, entry)
        if found is None:
            return
        block, entry = found
        c["interior_frees"] += 1
        self._block_finding(
            proc,
            INTERIOR_FREE,
            entry,
            (tid, seq, ts, address, KIND_FREE, domain, stack),
            size=entry.size,
            block_address=block,
        )

    @staticmethod
    def _holds(entry: _Entry, start: int, address: int, domain: int, ts: int) -> bool:
        return (
            entry.state == LIVE
            and entry.domain == domain
            and start < address < start + entry.size
            and entry.ts < ts
        )

    # -- export / restore ------------------------------------------------------------------
    def export(self, tables: Any = None) -> dict[str, dict[str, np.ndarray]]:
        """Every table of the state, or those named in ``tables`` (see the module docstring)."""
        out = self._export_all()
        if tables is None:
            return out
        unknown = set(tables) - set(TABLE_COLUMNS)
        if unknown:
            raise ValueError(f"unknown state tables {sorted(unknown)}")
        return {name: out[name] for name in tables}

    def _export_all(self) -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, np.ndarray]] = {}
        procs = [self._procs[p] for p in sorted(self._procs)]
        out["processes"] = _columns(
            PROCESS_COLUMNS,
            [
                {
                    "pid": p.pid,
                    "sample_bytes": p.sample_bytes,
                    "origin_ts_ns": p.timeline.origin,
                    "width_ns": p.timeline.width,
                    "first_ts_ns": p.first_ts,
                    "last_ts_ns": p.last_ts,
                    "first_alloc_ts_ns": p.first_alloc_ts,
                    "last_alloc_ts_ns": p.last_alloc_ts,
                    **p.c,
                    "peak_bytes": p.peak_bytes,
                    "peak_ts_ns": p.peak_ts,
                    **p.w,
                    "w_live_rounded": p.w_live_rounded,
                    "w_peak_bytes": p.w_peak_bytes,
                    "w_peak_ts_ns": p.w_peak_ts,
                }
                for p in procs
            ],
        )
        timeline = self._all
        out["all"] = _columns(
            ALL_COLUMNS,
            [
                {
                    "origin_ts_ns": timeline.origin if timeline else -1,
                    "width_ns": timeline.width if timeline else self.params.initial_width_ns,
                    "live_bytes": self._all_live,
                    "peak_bytes": self._all_peak,
                    "peak_ts_ns": self._all_peak_ts,
                    "w_live_rounded": self._all_w_live,
                    "w_peak_bytes": self._all_w_peak,
                    "w_peak_ts_ns": self._all_w_peak_ts,
                }
            ],
        )
        site_rows = []
        series = []
        for pid, stack, domain in sorted(self._sites):
            s = self._sites[(pid, stack, domain)]
            proc = self._procs[pid]
            at_peak = s.pv == proc.peak_version
            at_all = s.av == self._all_version
            site_rows.append(
                {
                    "pid": pid,
                    "stack_id": stack,
                    "domain": domain,
                    "allocations": s.allocations,
                    "bytes_allocated": s.bytes_allocated,
                    "frees": s.frees,
                    "bytes_freed": s.bytes_freed,
                    "live_blocks": s.live_blocks,
                    "live_bytes": s.live_bytes,
                    "reused": s.reused,
                    "temporary_count": s.temporary_count,
                    "temporary_bytes": s.temporary_bytes,
                    "peak_blocks": s.peak_blocks if at_peak else s.live_blocks,
                    "peak_bytes": s.peak_bytes if at_peak else s.live_bytes,
                    "all_peak_blocks": s.all_peak_blocks if at_all else s.live_blocks,
                    "all_peak_bytes": s.all_peak_bytes if at_all else s.live_bytes,
                    "last_slot": s.last_slot,
                }
            )
            filled = list(s.series)
            for j in range(max(s.last_slot + 1, 0), len(filled)):
                filled[j] = s.live_bytes
            series.append(filled)
        out["sites"] = _columns(SITE_COLUMNS, site_rows)
        out["sites"]["series"] = np.array(series, dtype=_I8).reshape(
            len(series), self.params.site_slots
        )
        out["threads"] = _columns(
            THREAD_COLUMNS,
            [
                dict(
                    zip(
                        ("allocations", "bytes_allocated", "frees", "live_blocks", "live_bytes"),
                        self._threads[k],
                        strict=True,
                    ),
                    pid=k[0],
                    tid=k[1],
                )
                for k in sorted(self._threads)
            ],
        )
        out["sizes"] = _columns(
            SIZE_COLUMNS,
            [{"pid": p, "size": s, "count": n} for (p, s), n in sorted(self._sizes.items())],
        )
        out["timeline"] = _columns(
            TIMELINE_COLUMNS,
            [
                {"pid": p.pid, "bucket": b, **_bucket_row(p.timeline.buckets[b])}
                for p in procs
                for b in sorted(p.timeline.buckets)
            ],
        )
        all_buckets = timeline.buckets if timeline else {}
        out["timeline_all"] = _columns(
            TIMELINE_ALL_COLUMNS,
            [{"bucket": b, **_bucket_row(all_buckets[b])} for b in sorted(all_buckets)],
        )
        out["lifetimes"] = _columns(
            LIFETIME_COLUMNS,
            [
                {"pid": p, "bucket": b, "count": v[0], "bytes": v[1]}
                for (p, b), v in sorted(self._lifetimes.items())
            ],
        )
        out["blocks"] = _columns(
            BLOCK_COLUMNS,
            [
                {
                    "pid": p,
                    "address": a,
                    "state": e.state,
                    "kind": e.kind,
                    "domain": e.domain,
                    "tid": e.tid,
                    "seq": e.seq,
                    "ts_ns": e.ts,
                    "size": e.size,
                    "stack_id": e.stack,
                    "end_ts_ns": e.end_ts,
                    "end_kind": e.end_kind,
                    "end_domain": e.end_domain,
                    "end_tid": e.end_tid,
                    "end_stack_id": e.end_stack,
                }
                for (p, a), e in sorted(self._entries.items())
            ],
        )
        out["findings"] = _columns(FINDING_COLUMNS, self._findings)
        out["oversized"] = _columns(OVERSIZED_COLUMNS, self._oversized)
        out["deaths"] = _columns(
            DEATH_COLUMNS, [{"pid": p, "address": a, "ts_ns": t} for p, a, t in self._deaths]
        )
        out["watched"] = _columns(
            WATCH_COLUMNS,
            [{"pid": p, "address": a, "ts_ns": t} for (p, a), t in sorted(self._watched.items())],
        )
        out["temporal"] = _columns(
            TEMPORAL_COLUMNS,
            [
                {
                    "pid": k[0],
                    "stack_id": k[1],
                    "domain": k[2],
                    "a": k[3],
                    "e": k[4],
                    "bytes": v[0],
                    "count": v[1],
                }
                for k, v in sorted(self._tcells.items())
            ],
        )
        return out

    @classmethod
    def restore(  # noqa: C901
        cls,
        params: dict[str, int],
        tables: dict[str, dict[str, np.ndarray]],
    ) -> PyFold:
        """A fold equal to the one that exported ``tables``."""
        fold = cls(**params)
        rows = {name: _rows(cols) for name, cols in tables.items()}
        all_row = rows["all"][0] if rows.get("all") else None
        for r in rows["processes"]:
            proc = _Process(r["pid"], r["origin_ts_ns"], fold.params, r["sample_bytes"])
            proc.timeline.width = r["width_ns"]
            proc.first_ts, proc.last_ts = r["first_ts_ns"], r["last_ts_ns"]
            proc.first_alloc_ts, proc.last_alloc_ts = r["first_alloc_ts_ns"], r["last_alloc_ts_ns"]
            for k in proc.c:
                proc.c[k] = r[k]
            proc.peak_bytes, proc.peak_ts = r["peak_bytes"], r["peak_ts_ns"]
            for k in proc.w:
                proc.w[k] = r[k]
            proc.w_live_rounded, proc.w_peak_bytes = r["w_live_rounded"], r["w_peak_bytes"]
            proc.w_peak_ts = r["w_peak_ts_ns"]
            fold._procs[proc.pid] = proc
            if proc.sample_bytes:
                fold._sampling[proc.pid] = proc.sample_bytes
        if all_row is not None and rows["processes"]:  # (an origin may be negative)
            fold._all = _Timeline(
                all_row["origin_ts_ns"], all_row["width_ns"], fold.params.timeline_buckets
            )
        if all_row is not None:
            fold._all_live, fold._all_peak = all_row["live_bytes"], all_row["peak_bytes"]
            fold._all_peak_ts = all_row["peak_ts_ns"]
            fold._all_w_live, fold._all_w_peak = all_row["w_live_rounded"], all_row["w_peak_bytes"]
            fold._all_w_peak_ts = all_row["w_peak_ts_ns"]
        series = tables["sites"]["series"]
        for i, r in enumerate(rows["sites"]):
            proc = fold._procs[r["pid"]]
            site = _Site(fold.params.site_slots, proc.peak_version, fold._all_version)
            for k in (
                "allocations",
                "bytes_allocated",
                "frees",
                "bytes_freed",
                "live_blocks",
                "live_bytes",
                "reused",
                "temporary_count",
                "temporary_bytes",
                "peak_blocks",
                "peak_bytes",
                "all_peak_blocks",
                "all_peak_bytes",
                "last_slot",
            ):
                setattr(site, k, r[k])
            site.series = [int(v) for v in series[i]]
            fold._sites[(r["pid"], r["stack_id"], r["domain"])] = site
        for r in rows["threads"]:
            fold._threads[(r["pid"], r["tid"])] = [
                r["allocations"],
                r["bytes_allocated"],
                r["frees"],
                r["live_blocks"],
                r["live_bytes"],
            ]
        for r in rows["sizes"]:
            fold._sizes[(r["pid"], r["size"])] = r["count"]
        for r in rows["timeline"]:
            fold._procs[r["pid"]].timeline.buckets[r["bucket"]] = _bucket_from(r)
        if fold._all is not None:
            for r in rows["timeline_all"]:
                fold._all.buckets[r["bucket"]] = _bucket_from(r)
        for r in rows["lifetimes"]:
            fold._lifetimes[(r["pid"], r["bucket"])] = [r["count"], r["bytes"]]
        for r in rows["blocks"]:
            e = _Entry()
            e.state, e.kind, e.domain, e.tid, e.seq = (
                r["state"],
                r["kind"],
                r["domain"],
                r["tid"],
                r["seq"],
            )
            e.ts, e.size, e.stack = r["ts_ns"], r["size"], r["stack_id"]
            e.end_ts, e.end_kind, e.end_domain = r["end_ts_ns"], r["end_kind"], r["end_domain"]
            e.end_tid, e.end_stack = r["end_tid"], r["end_stack_id"]
            fold._entries[(r["pid"], r["address"])] = e
            if e.state == LIVE and e.size > fold.params.interior_probe_bytes:
                fold._procs[r["pid"]].large.add(r["address"])
        fold._findings = rows["findings"]
        for f in fold._findings:
            fold._procs[f["pid"]].kept[f["type"]] += 1
        fold._oversized = rows["oversized"]
        for o in fold._oversized:
            fold._procs[o["pid"]].kept[0] += 1
        fold._deaths = [(r["pid"], r["address"], r["ts_ns"]) for r in rows["deaths"]]
        fold._watched = {(r["pid"], r["address"]): r["ts_ns"] for r in rows["watched"]}
        fold._tcells = {
            (r["pid"], r["stack_id"], r["domain"], r["a"], r["e"]): [r["bytes"], r["count"]]
            for r in rows.get("temporal", [])
        }
        return fold


def _bucket_row(bucket: _Bucket) -> dict[str, int]:
    return {name: getattr(bucket, name) for name in _Bucket.__slots__}


def _bucket_from(row: dict[str, int]) -> _Bucket:
    bucket = _Bucket()
    for name in _Bucket.__slots__:
        setattr(bucket, name, row[name])
    return bucket


def _columns(layout: dict[str, str], rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {name: np.array([r[name] for r in rows], dtype=dtype) for name, dtype in layout.items()}


def _rows(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    names = [n for n in columns if n != "series"]
    if not names:
        return []
    lists = [np.asarray(columns[n]).tolist() for n in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]
