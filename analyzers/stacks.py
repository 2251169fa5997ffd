"""Stacks as the prefix tree the producer interned: resolved only for the rows a report shows.

A log's ``stacks`` table is a tree: each node ``(pid, stack_id)`` has a parent node and one
frame (``frames`` row). Expanding every node into its full trace costs nodes x depth rows
(7.7 M frame rows for a test suite of 175 k nodes), so reports never do: a
:class:`StackResolver` loads the tree once per connection (a few arrays) and walks it for
the stacks a report actually lists.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

import duckdb
import numpy as np

#: Frames deeper than this are not walked (guards against a cyclic, corrupt stack tree).
MAX_STACK_DEPTH = 512

Frame = tuple[str, str, int]

_RESOLVERS: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, StackResolver] = (
    weakref.WeakKeyDictionary())


class StackResolver:
    """Resolves ``(pid, stack_id)`` to frames by walking the interned tree (see module doc)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        # DuckDB sorts the tree by key; ids stay 32-bit (a tree of millions of nodes).
        nodes = con.execute(
            "SELECT (pid::UBIGINT << 32) | stack_id AS key, parent_id, frame_id "
            "FROM raw_stacks ORDER BY key").fetchnumpy()
        self._keys = np.asarray(nodes["key"], dtype=np.uint64)
        self._parents = np.asarray(nodes["parent_id"], dtype=np.uint32)
        self._frame_ids = np.asarray(nodes["frame_id"], dtype=np.uint32)
        del nodes
        frames = con.execute(
            "SELECT pid, frame_id, function, filename, lineno FROM raw_frames").fetchall()
        self._frames: dict[tuple[int, int], Frame] = {
            (int(p), int(f)): (str(fn), str(file), int(line or 0))
            for p, f, fn, file, line in frames}
        self._cache: dict[tuple[int, int], tuple[Frame, ...]] = {}

    def _index(self, pid: int, node: int) -> int | None:
        key = (int(pid) << 32) | int(node)
        i = int(np.searchsorted(self._keys, np.uint64(key)))
        if i < len(self._keys) and int(self._keys[i]) == key:
            return i
        return None

    def frames(self, pid: int, stack_id: int) -> tuple[Frame, ...]:
        """The frames of a stack, innermost first (empty for 0 or an unknown stack)."""
        key = (int(pid), int(stack_id))
        found = self._cache.get(key)
        if found is not None:
            return found
        out: list[Frame] = []
        node = int(stack_id)
        while node and len(out) < MAX_STACK_DEPTH:
            i = self._index(pid, node)
            if i is None:
                break
            frame = self._frames.get((int(pid), int(self._frame_ids[i])))
            if frame is not None:
                out.append(frame)
            node = int(self._parents[i])
        result = self._cache[key] = tuple(out)
        return result

    def trace(self, pid: int, stack_id: int) -> list[str]:
        """``function (file:line)`` per frame, innermost first."""
        return [f"{fn} ({file}:{line})" for fn, file, line in self.frames(pid, stack_id)]

    def location(self, pid: int, stack_id: int) -> str | None:
        """The innermost frame as ``function (file:line)``; None for an unknown stack.

        One node's lookup: the rest of the stack is not walked.
        """
        i = self._index(pid, stack_id) if stack_id else None
        frame = None if i is None else self._frames.get((int(pid), int(self._frame_ids[i])))
        if frame is None:
            return None
        fn, file, line = frame
        return f"{fn} ({file}:{line})"

    def matching(self, predicate: Callable[[Frame], bool],
                 nodes: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
        """The ``nodes`` whose stack holds a frame that satisfies ``predicate``.

        Each node's path to the root is walked once at most (shared prefixes are
        remembered), so it costs the nodes on those paths, not nodes x depth.
        """
        hit_frames = {k for k, frame in self._frames.items() if predicate(frame)}
        if not hit_frames:
            return set()
        memo: dict[tuple[int, int], bool] = {}
        return {(pid, node) for pid, node in nodes
                if self._walk_match(int(pid), int(node), hit_frames, memo)}

    def _walk_match(self, pid: int, node: int, hit_frames: set[tuple[int, int]],
                    memo: dict[tuple[int, int], bool]) -> bool:
        path: list[tuple[int, int]] = []
        result = False
        while node and len(path) < MAX_STACK_DEPTH:
            key = (pid, node)
            if key in memo:
                result = memo[key]
                break
            i = self._index(pid, node)
            if i is None:
                break
            path.append(key)
            if (pid, int(self._frame_ids[i])) in hit_frames:
                result = True
                break
            node = int(self._parents[i])
        for key in path:
            memo[key] = result
        return result


def resolver(con: duckdb.DuckDBPyConnection) -> StackResolver:
    """The connection's resolver, loaded on first use."""
    found = _RESOLVERS.get(con)
    if found is None:
        found = _RESOLVERS[con] = StackResolver(con)
    return found


def forget(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the connection's resolver (its stack tables grew)."""
    _RESOLVERS.pop(con, None)


def add_locations(con: duckdb.DuckDBPyConnection, items: Iterable[dict[str, Any]],
                  trace: bool = False) -> None:
    """Set ``location`` (and with ``trace`` the ``trace`` list) of items with pid/stack_id."""
    stacks = resolver(con)
    for item in items:
        pid, stack_id = int(item["pid"]), int(item["stack_id"])
        item["location"] = stacks.location(pid, stack_id)
        if trace:
            item["trace"] = stacks.trace(pid, stack_id)
