"""Every producer row checked against the log schema before it is written.

:func:`decode <memscope.broker.decode.decode>` builds each rare table's record batch with
the schema's types (a value of the wrong type rejects the whole batch); :func:`check` then
drops the rows that the readers could not use and says why:

* a required column is null (or was not sent at all: missing columns arrive as nulls);
* an ``event`` outside the table's values (``processes``: start/exit; ``threads``:
  start/name/exit; ``scopes``: enter/exit);
* a ``domain`` outside the known allocator domains (``aggregates``);
* a size or count of 2**63 bytes or more (no real value is; SQL sums would overflow);
* a text longer than :data:`MAX_TEXT` characters (:data:`MAX_LONG_TEXT` for ``argv``
  items and ``ffi.details``).

Memory events are checked where they are decoded (:mod:`memscope.protocol.records`): a
``rec1`` chunk with an unknown kind or domain fails its scan and a ``cols1`` chunk fails
:func:`check_memory_columns`; either rejects its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from memscope.protocol.wire import DOMAIN_NAMES, KIND_NAMES, WireError

MAX_TEXT = 64 * 1024
MAX_LONG_TEXT = 1024 * 1024
_MAX_SIZE = (1 << 63) - 1
_MAX_DOMAIN = max(DOMAIN_NAMES)
_MAX_KIND = max(KIND_NAMES)

#: Columns that must not be null, per table (others may be).
REQUIRED: dict[str, tuple[str, ...]] = {
    "processes": ("ts_ns", "event"),
    "threads": ("tid", "ts_ns", "event"),
    "frames": ("frame_id", "function", "filename"),
    "stacks": ("stack_id", "parent_id", "frame_id"),
    "variables": ("tid", "ts_ns", "var_id", "name", "type_name", "address", "size"),
    "scopes": ("tid", "ts_ns", "event", "scope_id"),
    "ffi": ("ts_ns", "event"),
    "producer_stats": ("ts_ns",),
    "aggregates": ("tid", "ts_ns", "stack_id", "domain", "alloc_count", "alloc_bytes"),
}
EVENTS: dict[str, tuple[str, ...]] = {
    "processes": ("start", "exit"),
    "threads": ("start", "name", "exit"),
    "scopes": ("enter", "exit"),
}
_SIZES: dict[str, tuple[str, ...]] = {
    "variables": ("size", "deep_size"),
    "aggregates": ("alloc_count", "alloc_bytes"),
    "producer_stats": ("events", "bytes", "current_bytes", "peak_bytes"),
    "processes": ("sample_bytes",),
}
_LONG_TEXT = {("ffi", "details"), ("processes", "argv")}


@dataclass(frozen=True)
class Checked:
    """The rows kept, and how many were dropped and why (``reason`` empty when none)."""

    batch: pa.RecordBatch
    rejected: int = 0
    reason: str = ""


def _text_too_long(column: pa.Array, limit: int) -> pa.Array:
    if pa.types.is_list(column.type):
        flat = pc.list_flatten(column)
        if not len(flat):
            return pa.array([False] * len(column))
        lengths = pc.fill_null(pc.utf8_length(flat), 0)
        parents = pc.list_parent_indices(column)
        over = np.zeros(len(column), dtype=bool)
        np.logical_or.at(
            over, parents.to_numpy(), pc.greater(lengths, limit).to_numpy(zero_copy_only=False)
        )
        return pa.array(over)
    return pc.fill_null(pc.greater(pc.utf8_length(column), limit), False)


def _scalar(value: int, batch: pa.RecordBatch, column: str) -> pa.Scalar:
    """``value`` typed as ``column`` (a plain int would make compute cast u64 to i64)."""
    return pa.scalar(value, batch.schema.field(column).type)


def _failures(table: str, batch: pa.RecordBatch) -> list[tuple[str, pa.Array]]:
    """(what is wrong, mask of the rows it is wrong in) for every check of ``table``."""
    out: list[tuple[str, pa.Array]] = []
    for name in REQUIRED.get(table, ()):
        out.append((f"no {name}", pc.is_null(batch.column(name))))
    allowed = EVENTS.get(table)
    if allowed:
        inside = pc.is_in(batch.column("event"), value_set=pa.array(allowed))
        out.append(
            (
                f"event not one of {'/'.join(allowed)}",
                pc.and_(pc.is_valid(batch.column("event")), pc.invert(inside)),
            )
        )
    if table == "aggregates":
        out.append(
            (
                f"domain above {_MAX_DOMAIN}",
                pc.fill_null(
                    pc.greater(batch.column("domain"), _scalar(_MAX_DOMAIN, batch, "domain")), False
                ),
            )
        )
    for name in _SIZES.get(table, ()):
        out.append(
            (
                f"{name} of 2**63 or more",
                pc.fill_null(
                    pc.greater(batch.column(name), _scalar(_MAX_SIZE, batch, name)), False
                ),
            )
        )
    for field in batch.schema:
        is_text = pa.types.is_string(field.type) or (
            pa.types.is_list(field.type) and pa.types.is_string(field.type.value_type)
        )
        if is_text:
            limit = MAX_LONG_TEXT if (table, field.name) in _LONG_TEXT else MAX_TEXT
            out.append(
                (
                    f"{field.name} longer than {limit} characters",
                    _text_too_long(batch.column(field.name), limit),
                )
            )
    return out


def check(table: str, batch: pa.RecordBatch) -> Checked:
    """Drop the rows of ``table`` that break the log's rules (see the module docs)."""
    if not batch.num_rows:
        return Checked(batch)
    bad = None
    reasons = []
    for what, mask in _failures(table, batch):
        count = pc.sum(mask).as_py() or 0
        if count:
            reasons.append(f"{count} with {what}")
            bad = mask if bad is None else pc.or_(bad, mask)
    if bad is None:
        return Checked(batch)
    kept = batch.filter(pc.invert(bad))
    rejected = batch.num_rows - kept.num_rows
    return Checked(
        kept,
        rejected,
        f"{table}: {rejected} of {batch.num_rows} rows rejected (" + "; ".join(reasons) + ")",
    )


def check_memory_columns(columns: dict[str, np.ndarray]) -> None:
    """Raise :class:`WireError` when decoded memory events have an unknown kind or domain."""
    if len(columns["kind"]) and int(columns["kind"].max()) > _MAX_KIND:
        raise WireError(
            f"memory event kind {int(columns['kind'].max())} is unknown (0-{_MAX_KIND})"
        )
    if len(columns["domain"]) and int(columns["domain"].max()) > _MAX_DOMAIN:
        raise WireError(
            f"memory event domain {int(columns['domain'].max())} is unknown (0-{_MAX_DOMAIN})"
        )
