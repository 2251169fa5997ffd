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

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MemoryStats:
        """Build from :func:`memscope.analyzers.memstats.process_stats`'s answer."""
        required = [f.name for f in fields(cls) if f.name not in ("unmatched_frees", "peak_ts_ns")]
        missing = [name for name in required if name not in values]
        if missing:
            raise RuntimeError(f"memscope: the stats answer lacks {', '.join(missing)}")
        kwargs: dict[str, Any] = {name: int(values[name] or 0) for name in required}
        kwargs["unmatched_frees"] = int(values.get("unmatched_frees") or 0)
        peak_ts = values.get("peak_ts_ns")
        kwargs["peak_ts_ns"] = None if peak_ts is None else int(peak_ts)
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class TypeUsage:
    """Tracked variables of one type alive now: their summed deep size and how many."""

    type_name: str
    total_size: int
    allocation_count: int
