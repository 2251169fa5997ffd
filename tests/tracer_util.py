"""Helpers shared by the tracer tests: run code under capture and decode what it recorded."""

from __future__ import annotations

import numpy as np

from memscope.producer import capture
from memscope.protocol import records


def decode_all(chunks):
    """Concatenate every chunk's columns, with a ``tid`` column added."""
    parts = []
    for chunk in chunks:
        cols = dict(records.decode_chunk(chunk))
        cols["tid"] = np.full(len(cols["kind"]), chunk["tid"], dtype=np.uint64)
        parts.append(cols)
    if not parts:
        return {
            "tid": np.zeros(0, np.uint64),
            "kind": np.zeros(0, np.uint8),
            "size": np.zeros(0, np.uint64),
            "address": np.zeros(0, np.uint64),
            "domain": np.zeros(0, np.uint8),
            "stack_id": np.zeros(0, np.uint32),
            "ts_ns": np.zeros(0, np.int64),
            "old_address": np.zeros(0, np.uint64),
        }
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def merge_rare(into, rare):
    """Append the columns of one drain's rare tables to an accumulator."""
    for table, columns in rare.items():
        target = into.setdefault(table, {})
        for name, values in columns.items():
            target.setdefault(name, []).extend(values)
    return into


#: frames/stacks rows of every drain in this process (they are sent only once each).
KNOWN: dict = {}


def drain():
    """capture.drain(), remembering frames and stacks rows for resolve_stack."""
    chunks, rare = capture.drain()
    merge_rare(KNOWN, {t: rare[t] for t in ("frames", "stacks") if t in rare})
    return chunks, rare


def capture_run(func, mode="full", **start_kwargs):
    """Run func() under capture; return (events, rare tables, func's result)."""
    drain()
    capture.start(mode, **start_kwargs)
    try:
        result = func()
    finally:
        capture.stop()
    chunks, rare = drain()
    return decode_all(chunks), rare, result


def resolve_stack(rare, stack_id):
    """[(function, basename, lineno), ...] innermost first, from frames/stacks rows."""
    del rare  # rows may have been sent by an earlier drain: use everything seen
    stacks = KNOWN.get("stacks", {})
    frames = KNOWN.get("frames", {})
    parent = dict(zip(stacks.get("stack_id", []), stacks.get("parent_id", []), strict=True))
    frame_of = dict(zip(stacks.get("stack_id", []), stacks.get("frame_id", []), strict=True))
    info = {
        fid: (fn, fname.rsplit("/", 1)[-1], line)
        for fid, fn, fname, line in zip(
            frames["frame_id"],
            frames["function"],
            frames["filename"],
            frames["lineno"],
            strict=True,
        )
    }
    out = []
    while stack_id:
        out.append(info[frame_of[stack_id]])
        stack_id = parent[stack_id]
    return out
