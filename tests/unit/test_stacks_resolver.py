"""StackResolver: walks the interned tree, held as 8 bytes a node, dense or sparse ids alike."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from memscope.analyzers import stacks as stacks_mod
from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.stacks import StackResolver
from memscope.analyzers.views import connect_tables
from memscope.protocol.log_schema import STACKS


def _random_tree(
    rng: np.random.Generator, pid: int, nodes: int, sparse: bool
) -> tuple[dict[int, tuple[int, int]], pa.Table]:
    """A random tree of ``nodes`` nodes: id -> (parent, frame); sparse ids spread far apart."""
    ids = (
        np.sort(rng.choice(1 << 30, nodes, replace=False)) + 1
        if sparse
        else np.arange(1, nodes + 1)
    )
    tree: dict[int, tuple[int, int]] = {}
    for i, node in enumerate(ids.tolist()):
        parent = int(ids[int(rng.integers(0, i))]) if i and rng.random() < 0.9 else 0
        tree[node] = (parent, int(rng.integers(1, 6)))
    table = pa.table(
        {
            "pid": [pid] * nodes,
            "stack_id": list(tree),
            "parent_id": [p for p, _ in tree.values()],
            "frame_id": [f for _, f in tree.values()],
        },
        schema=STACKS,
    )
    return tree, table


def test_traces_equal_a_walk_of_the_tree_for_dense_and_sparse_ids(monkeypatch):
    monkeypatch.setattr(stacks_mod, "BATCH_ROWS", 64)  # several batches, pids interleaved
    rng = np.random.default_rng(3)
    dense, dense_rows = _random_tree(rng, 7, 500, sparse=False)
    sparse, sparse_rows = _random_tree(rng, 8, 300, sparse=True)
    rows = pa.concat_tables([dense_rows, sparse_rows]).take(rng.permutation(800))
    b = LogBuilder()
    for pid in (7, 8):
        for frame in range(1, 6):
            b._rows["frames"].append(
                {
                    "pid": pid,
                    "frame_id": frame,
                    "function": f"f{frame}",
                    "filename": f"m{pid}.py",
                    "lineno": frame * 10,
                }
            )
    tables = b.tables()
    tables["stacks"] = rows
    resolver = StackResolver(connect_tables(tables))
    for pid, tree in ((7, dense), (8, sparse)):
        for node in rng.choice(list(tree), 60).tolist():
            expected, walk = [], node
            while walk:
                walk, frame = tree[walk]
                expected.append((f"f{frame}", f"m{pid}.py", frame * 10))
            assert list(resolver.frames(pid, node)) == expected
            assert (
                resolver.location(pid, node)
                == f"{expected[0][0]} ({expected[0][1]}:{expected[0][2]})"
            )
    assert resolver.frames(7, 10_000) == ()  # unknown nodes resolve to nothing
    assert resolver.location(8, 5) is None
    assert resolver.frames(9, 1) == ()
    # dense ids: two 32-bit slots per id; sparse: three per node (ids kept sorted)
    held = {
        pid: n.parents.nbytes + n.frames.nbytes + (0 if n.ids is None else n.ids.nbytes)
        for pid, n in resolver._nodes.items()
    }
    assert held == {7: 8 * 501, 8: 12 * 300}


def test_matching_finds_stacks_through_any_frame():
    b = LogBuilder()
    hit = b.stack(1, [("main", "a.py", 1), ("load", "ctypes/__init__.py", 2), ("f", "a.py", 3)])
    miss = b.stack(1, [("main", "a.py", 1), ("g", "a.py", 4)])
    resolver = StackResolver(connect_tables(b.tables()))
    found = resolver.matching(lambda frame: "ctypes" in frame[1], [(1, hit), (1, miss)])
    assert found == {(1, hit)}
    assert resolver.trace(1, miss) == ["g (a.py:4)", "main (a.py:1)"]
