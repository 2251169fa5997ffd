"""Stacks as the prefix tree the producer interned: resolved only for the rows a report shows.

A log's ``stacks`` table is a tree: each node ``(pid, stack_id)`` has a parent node and one
frame (``frames`` row). Expanding every node into its full trace costs nodes x depth rows
(7.7 M frame rows for a test suite of 175 k nodes), so reports never do: a
:class:`StackResolver` walks the tree for the stacks a report actually lists.

The tree is read once per connection, streamed in batches straight into two 32-bit arrays
per process indexed by ``stack_id`` (the producer numbers a process's nodes 1, 2, 3, ...):
8 bytes a node and no sort, so a program of 5.8 M distinct nodes costs 46 MiB (a DuckDB
``ORDER BY`` of the same table peaked 411 MiB above it). A process whose ids are sparse
keeps its nodes sorted by id instead (looked up by binary search).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

import duckdb
import numpy as np

#: Frames deeper than this are not walked (guards against a cyclic, corrupt stack tree).
MAX_STACK_DEPTH = 512
#: Rows of the stacks table read per batch while the tree is loaded.
BATCH_ROWS = 1 << 18
#: A process's ids are "sparse" (kept sorted, not indexed) past this many slots per node.
_SPARSE_RATIO = 4
_ABSENT = np.uint32(0xFFFFFFFF)  # frame id of an index slot no node filled

Frame = tuple[str, str, int]

_RESOLVERS: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, StackResolver] = (
    weakref.WeakKeyDictionary()
)


class _Nodes:
    """One process's nodes: ``parent`` and ``frame`` of each ``stack_id``.

    Indexed by id (``top`` slots: its largest id + 1) unless that is over
    :data:`_SPARSE_RATIO` slots per node; then sorted by id at :meth:`finish`.
    """

    def __init__(self, top: int, count: int) -> None:
        self.sparse = top > _SPARSE_RATIO * count + BATCH_ROWS
        size = 0 if self.sparse else top
        self.parents = np.zeros(size, np.uint32)
        self.frames = np.full(size, _ABSENT, np.uint32)
        self.ids: np.ndarray | None = None  # sorted ids, when sparse (else None: indexed)
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, ids: np.ndarray, parents: np.ndarray, frames: np.ndarray) -> None:
        if self.sparse or int(ids.max()) >= len(self.frames):  # (rows added since counted)
            self._chunks.append((ids, parents, frames))
            return
        self.parents[ids] = parents
        self.frames[ids] = frames

    def finish(self) -> None:
        if not self._chunks:
            return
        present = np.flatnonzero(self.frames != _ABSENT).astype(np.uint32)
        ids = np.concatenate([present, *(c[0] for c in self._chunks)])
        parents = np.concatenate([self.parents[present], *(c[1] for c in self._chunks)])
        frames = np.concatenate([self.frames[present], *(c[2] for c in self._chunks)])
        self._chunks = []
        order = np.argsort(ids, kind="stable")
        self.ids, self.parents, self.frames = ids[order], parents[order], frames[order]

    def get(self, node: int) -> tuple[int, int] | None:
        """(parent, frame id) of ``node``; None when the tree has no such node."""
        if self.ids is not None:
            i = int(np.searchsorted(self.ids, node))
            if i >= len(self.ids) or int(self.ids[i]) != node:
                return None
        else:
            i = node
            if i >= len(self.frames) or self.frames[i] == _ABSENT:
                return None
        return int(self.parents[i]), int(self.frames[i])


class StackResolver:
    """Resolves ``(pid, stack_id)`` to frames by walking the interned tree (see module doc)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._nodes: dict[int, _Nodes] = {
            int(pid): _Nodes(int(top) + 1, int(count))
            for pid, top, count in con.execute(
                "SELECT pid, max(stack_id), count(*) FROM raw_stacks GROUP BY pid"
            ).fetchall()
        }
        reader = con.sql(  # streamed: never the whole table at once
            "SELECT pid, stack_id, parent_id, frame_id FROM raw_stacks WHERE stack_id <> 0"
        ).to_arrow_reader(BATCH_ROWS)
        for batch in reader:
            self._add(batch)
        for nodes in self._nodes.values():
            nodes.finish()
        frames = con.execute(
            "SELECT pid, frame_id, function, filename, lineno FROM raw_frames"
        ).fetchall()
        self._frames: dict[tuple[int, int], Frame] = {
            (int(p), int(f)): (str(fn), str(file), int(line or 0))
            for p, f, fn, file, line in frames
        }
        self._cache: dict[tuple[int, int], tuple[Frame, ...]] = {}

    def _add(self, batch: Any) -> None:
        if not batch.num_rows:
            return
        columns = [
            np.asarray(batch.column(i).to_numpy(zero_copy_only=False), np.uint32) for i in range(4)
        ]
        pids = columns[0]
        for pid in np.unique(pids).tolist():
            rows = pids == pid
            nodes = self._nodes.get(int(pid))
            if nodes is None:  # a process whose rows landed after they were counted
                nodes = self._nodes[int(pid)] = _Nodes(0, 0)
            nodes.add(columns[1][rows], columns[2][rows], columns[3][rows])

    def _node(self, pid: int, node: int) -> tuple[int, int] | None:
        nodes = self._nodes.get(int(pid))
        return None if nodes is None else nodes.get(int(node))

    def frames(self, pid: int, stack_id: int) -> tuple[Frame, ...]:
        """The frames of a stack, innermost first (empty for 0 or an unknown stack)."""
        key = (int(pid), int(stack_id))
        found = self._cache.get(key)
        if found is not None:
            return found
        out: list[Frame] = []
        node = int(stack_id)
        for _ in range(MAX_STACK_DEPTH):
            step = self._node(pid, node) if node else None
            if step is None:
                break
            node, frame_id = step
            frame = self._frames.get((int(pid), frame_id))
            if frame is not None:
                out.append(frame)
        result = self._cache[key] = tuple(out)
        return result

    def trace(self, pid: int, stack_id: int) -> list[str]:
        """``function (file:line)`` per frame, innermost first."""
        return [f"{fn} ({file}:{line})" for fn, file, line in self.frames(pid, stack_id)]

    def location(self, pid: int, stack_id: int) -> str | None:
        """The innermost frame as ``function (file:line)``; None for an unknown stack.

        One node's lookup: the rest of the stack is not walked.
        """
        found = self._node(pid, stack_id) if stack_id else None
        frame = None if found is None else self._frames.get((int(pid), found[1]))
        if frame is None:
            return None
        fn, file, line = frame
        return f"{fn} ({file}:{line})"

    def any_frame(self, predicate: Callable[[Frame], bool]) -> bool:
        """Whether any frame of the log satisfies ``predicate`` (a cheap test first)."""
        return any(predicate(frame) for frame in self._frames.values())

    def matching(
        self, predicate: Callable[[Frame], bool], nodes: Iterable[tuple[int, int]]
    ) -> set[tuple[int, int]]:
        """The ``nodes`` whose stack holds a frame that satisfies ``predicate``.

        Each node's path to the root is walked once at most (shared prefixes are
        remembered), so it costs the nodes on those paths, not nodes x depth.
        """
        hit_frames = {k for k, frame in self._frames.items() if predicate(frame)}
        if not hit_frames:
            return set()
        memo: dict[tuple[int, int], bool] = {}
        return {
            (pid, node)
            for pid, node in nodes
            if self._walk_match(int(pid), int(node), hit_frames, memo)
        }

    def _walk_match(
        self,
        pid: int,
        node: int,
        hit_frames: set[tuple[int, int]],
        memo: dict[tuple[int, int], bool],
    ) -> bool:
        path: list[tuple[int, int]] = []
        result = False
        while node and len(path) < MAX_STACK_DEPTH:
            key = (pid, node)
            if key in memo:
                result = memo[key]
                break
            found = self._node(pid, node)
            if found is None:
                break
            path.append(key)
            if (pid, found[1]) in hit_frames:
                result = True
                break
            node = found[0]
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


def add_locations(
    con: duckdb.DuckDBPyConnection, items: Iterable[dict[str, Any]], trace: bool = False
) -> None:
    """Set ``location`` (and with ``trace`` the ``trace`` list) of items with pid/stack_id."""
    stacks = resolver(con)
    for item in items:
        pid, stack_id = int(item["pid"]), int(item["stack_id"])
        item["location"] = stacks.location(pid, stack_id)
        if trace:
            item["trace"] = stacks.trace(pid, stack_id)
