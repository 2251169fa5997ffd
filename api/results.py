"""The small value objects the tracker returns."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class MemoryStats:
    """Exact totals for one process, from its allocator events in the log (bytes, counts).

    ``active_memory`` and ``active_allocations`` are what is allocated and not yet freed
    (since tracing started); ``peak_memory`` is the highest ``active_memory`` reached, at
    ``peak_ts_ns`` (monotonic clock); ``unmatched_frees`` counts frees of blocks allocated
    before tracing started.

    memscope-rs's ``peak_allocations`` (blocks alive at the peak), ``leaked_allocations`` and
    ``leaked_memory`` (blocks still allocated when the process's trace ended; while it runs,
    those not freed so far) are computed from the log; None only from a source that cannot
    tell them.
    """

    active_memory: int
    peak_memory: int
    active_allocations: int
    total_allocations: int
    total_allocated: int
    total_deallocations: int
    total_deallocated: int
    unmatched_frees: int = 0
    peak_ts_ns: int | None = None
    peak_allocations: int | None = None
    leaked_allocations: int | None = None
    leaked_memory: int | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MemoryStats:
        """Build from :func:`memscope.analyzers.memstats.process_stats`'s answer."""
        optional = ("unmatched_frees", "peak_ts_ns", *_SEED_FIELDS)
        required = [f.name for f in fields(cls) if f.name not in optional]
        missing = [name for name in required if name not in values]
        if missing:
            raise RuntimeError(f"memscope: the stats answer lacks {', '.join(missing)}")
        kwargs: dict[str, Any] = {name: int(values[name] or 0) for name in required}
        kwargs["unmatched_frees"] = int(values.get("unmatched_frees") or 0)
        peak_ts = values.get("peak_ts_ns")
        kwargs["peak_ts_ns"] = None if peak_ts is None else int(peak_ts)
        for name in _SEED_FIELDS:
            value = values.get(name)
            kwargs[name] = None if value is None else int(value)
        return cls(**kwargs)


#: MemoryStats fields known only from the log (see the class docstring).
_SEED_FIELDS = ("peak_allocations", "leaked_allocations", "leaked_memory")


@dataclass(frozen=True, slots=True)
class AllocationInfo:
    """One block of this process (memscope-rs's ``AllocationInfo``), from the log.

    ``ts_ns`` is when it was allocated and ``free_ts_ns`` when it ended (None while alive;
    only :meth:`Tracker.get_allocation_history` fills it); ``location`` is the innermost
    Python frame that allocated it (None without one); ``domain`` the allocator (``raw``,
    ``mem``, ``obj``, ``numpy``, ...); ``var_name`` and ``type_name`` those of the tracked
    variable (``track_var``) whose object the block is, if any (active allocations only).
    """

    address: int
    size: int
    domain: str
    tid: int
    ts_ns: int
    stack_id: int
    location: str | None
    free_ts_ns: int | None = None
    var_name: str | None = None
    type_name: str | None = None

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> AllocationInfo:
        """Build from a row of :mod:`memscope.analyzers.seed_api`."""
        free = row.get("free_ts_ns")

        def text(key: str) -> str | None:
            value = row.get(key)
            return None if value is None else str(value)

        return cls(
            int(row["address"]),
            int(row["size"]),
            str(row["domain"]),
            int(row["tid"]),
            int(row["ts_ns"]),
            int(row["stack_id"]),
            text("location"),
            None if free is None else int(free),
            text("var_name"),
            text("type_name"),
        )


@dataclass(frozen=True, slots=True)
class TypeUsage:
    """Tracked variables of one type alive now: their summed deep size and how many."""

    type_name: str
    total_size: int
    allocation_count: int
