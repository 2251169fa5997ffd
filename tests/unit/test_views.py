"""The SQL views over hand-built logs: block matching, processes, variables, stacks."""

import pyarrow as pa
import pytest

from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.views import PUBLIC_VIEWS, connect_tables, materialize
from memscope.protocol.wire import DOMAIN_MEM, DOMAIN_RAW


def _allocs(con):
    return con.execute(
        "SELECT address, size, ts_ns, free_ts_ns, end_kind, kind FROM allocations "
        "ORDER BY ts_ns, address"
    ).fetchall()


def test_alloc_free_realloc_and_reuse_are_matched():
    b = LogBuilder()
    b.alloc(1, 10, 0x100, 64)
    b.free(1, 20, 0x100)
    b.alloc(1, 30, 0x100, 32)  # the address again, after its free
    b.realloc(1, 40, 0x100, 0x100, 96)  # in place: ends the 32 B block, starts a 96 B one
    b.realloc(1, 50, 0x100, 0x900, 200)  # moved
    b.alloc(1, 60, 0x500, 8)
    b.alloc(1, 70, 0x500, 16)  # reused without a free: the free was not recorded
    con = connect_tables(b.tables())
    assert _allocs(con) == [
        (0x100, 64, 10, 20, "free", "alloc"),
        (0x100, 32, 30, 40, "realloc", "alloc"),
        (0x100, 96, 40, 50, "realloc", "realloc"),
        (0x900, 200, 50, None, None, "realloc"),
        (0x500, 8, 60, None, "reused", "alloc"),
        (0x500, 16, 70, None, None, "alloc"),
    ]


def test_materialized_matching_equals_the_view():
    b = LogBuilder()
    for i in range(50):
        b.alloc(1, i * 10, 0x100 + (i % 7) * 16, i + 1)
        if i % 3:
            b.free(1, i * 10 + 5, 0x100 + (i % 7) * 16)
    con = connect_tables(b.tables())
    before = _allocs(con)
    materialize(con)
    assert _allocs(con) == before
    assert len(before) == 50


def test_frees_view_marks_unmatched_and_repeated_ends():
    b = LogBuilder()
    b.free(1, 5, 0x700)  # never allocated in the log
    b.alloc(1, 10, 0x100, 64)
    b.free(1, 20, 0x100)
    b.free(1, 30, 0x100)  # again
    con = connect_tables(b.tables())
    rows = con.execute(
        "SELECT address, ts_ns, matched, size, repeated_end FROM frees ORDER BY ts_ns"
    ).fetchall()
    assert rows == [
        (0x700, 5, False, None, False),
        (0x100, 20, True, 64, False),
        (0x100, 30, False, None, True),
    ]


def test_processes_one_row_per_pid():
    b = LogBuilder()
    b.process(10, 100, ppid=1, argv=["a.py", "x"], exit_ts_ns=900, exit_code=3)
    b.process(11, 200, ppid=10, mode="sampled")
    con = connect_tables(b.tables())
    rows = con.execute(
        "SELECT pid, ppid, argv, start_ts_ns, end_ts_ns, exit_code, mode FROM processes "
        "ORDER BY pid"
    ).fetchall()
    assert rows == [
        (10, 1, ["a.py", "x"], 100, 900, 3, "full"),
        (11, 10, ["app.py"], 200, None, None, "sampled"),
    ]


def test_threads_take_the_latest_name():
    b = LogBuilder()
    b.thread(1, 7, 10, "Thread-1")
    b._rows["threads"].append(
        {"pid": 1, "tid": 7, "ts_ns": 20, "event": "name", "native_id": 77, "name": "loader"}
    )
    con = connect_tables(b.tables())
    assert con.execute("SELECT pid, tid, name, start_ts_ns FROM threads").fetchall() == [
        (1, 7, "loader", 10)
    ]


def test_variable_dies_at_the_first_free_after_it_was_tracked():
    b = LogBuilder()
    b.alloc(1, 10, 0x100, 64)
    b.free(1, 20, 0x100)  # an earlier object at the same address
    b.alloc(1, 30, 0x100, 64)
    b.variable(1, 35, "data", "list[int]", 0x100, 64)
    b.free(1, 90, 0x100)
    b.variable(1, 40, "alive", "dict", 0x300, 10)
    con = connect_tables(b.tables())
    rows = con.execute(
        "SELECT name, created_ts_ns, died_ts_ns, lifetime_ns, alive_at_end FROM variables "
        "ORDER BY name"
    ).fetchall()
    assert rows == [("alive", 40, None, None, True), ("data", 35, 90, 55, False)]


def test_frames_resolve_the_interned_stack_tree():
    b = LogBuilder()
    leaf = b.stack(1, [("main", "app.py", 1), ("load", "app.py", 5), ("parse", "lib.py", 9)])
    con = connect_tables(b.tables())
    frames = con.execute(
        "SELECT depth, function, filename, lineno FROM frames WHERE stack_id = ? ORDER BY depth",
        [leaf],
    ).fetchall()
    assert frames == [(0, "parse", "lib.py", 9), (1, "load", "app.py", 5), (2, "main", "app.py", 1)]
    stack = con.execute(
        "SELECT depth, location, trace FROM stacks WHERE stack_id = ?", [leaf]
    ).fetchone()
    assert stack == (
        3,
        "parse (lib.py:9)",
        ["parse (lib.py:9)", "load (app.py:5)", "main (app.py:1)"],
    )


def test_a_cyclic_stack_tree_does_not_hang():
    b = LogBuilder()
    b._rows["frames"].append(
        {"pid": 1, "frame_id": 1, "function": "f", "filename": "x.py", "lineno": 1}
    )
    b._rows["stacks"] += [
        {"pid": 1, "stack_id": 1, "parent_id": 2, "frame_id": 1},
        {"pid": 1, "stack_id": 2, "parent_id": 1, "frame_id": 1},
    ]
    con = connect_tables(b.tables())
    depth = con.execute("SELECT max(depth) FROM frames").fetchone()[0]
    assert depth == 512


def test_events_name_kinds_and_domains():
    b = LogBuilder()
    b.alloc(1, 1, 0x10, 8, domain=DOMAIN_RAW)
    b.free(1, 2, 0x10, domain=DOMAIN_MEM)
    con = connect_tables(b.tables())
    assert con.execute("SELECT kind, domain FROM events ORDER BY seq").fetchall() == [
        ("alloc", "raw"),
        ("free", "mem"),
    ]


def test_ingest_keeps_the_latest_counters_per_producer():
    b = LogBuilder()
    b.ingest("h:1:0", 1, 10, batches=1, events=5)
    b.ingest("h:1:0", 1, 20, batches=2, events=9, gaps=1)
    b.ingest("h:2:0", 2, 15, batches=1, events=3)
    con = connect_tables(b.tables())
    assert con.execute(
        "SELECT producer, batches, events, gaps FROM ingest ORDER BY producer"
    ).fetchall() == [("h:1:0", 2, 9, 1), ("h:2:0", 1, 3, 0)]


def test_every_public_view_answers_on_an_empty_log():
    con = connect_tables({})
    for view in PUBLIC_VIEWS:
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)


def test_unknown_tables_are_refused():
    with pytest.raises(ValueError, match="unknown log tables"):
        connect_tables({"mem": pa.table({"a": [1]})})


def _messy_log(seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    b = LogBuilder()
    live = set()
    for t in range(200):
        addr = int(rng.integers(1, 12)) * 16
        roll = rng.random()
        domain = int(rng.integers(0, 3))
        if roll < 0.4:
            b.alloc(1, t, addr, int(rng.integers(1, 100)), domain=domain)  # reuse is allowed
            live.add(addr)
        elif roll < 0.8:
            b.free(1, t, addr, domain=domain)  # double and unmatched frees too
            live.discard(addr)
        else:
            new = int(rng.integers(1, 12)) * 16
            b.realloc(1, t, addr, new, int(rng.integers(1, 100)), domain=domain)
    return b


@pytest.mark.parametrize("chunk_rows", [1, 2, 5, 7, 1000])
def test_chunked_matching_equals_one_window(chunk_rows):
    for seed in range(3):
        tables = _messy_log(seed).tables()
        whole = connect_tables(tables)
        allocs = "SELECT * FROM _allocations ORDER BY pid, address, ts_ns, seq"
        ends = "SELECT * FROM _notable_ends ORDER BY pid, address, ts_ns, seq"
        expected = (whole.execute(allocs).fetchall(), whole.execute(ends).fetchall())
        chunked = connect_tables(tables)
        materialize(chunked, chunk_rows=chunk_rows)
        assert (chunked.execute(allocs).fetchall(), chunked.execute(ends).fetchall()) == expected
