"""Unit tests of the API's pure parts: type names, sizes, call-site names, rows, scopes."""

import array
import collections
import sys
import threading

import numpy as np
import pytest

from memscope.producer import callsite, scopes, sizes, typeinfo
from memscope.producer.rows import COLUMNS, RowBuffer, merge
from memscope.producer.threadwatch import ThreadWatcher
from memscope.producer.tracking import Registry, record

# -- typeinfo --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (1, "int"),
        ("s", "str"),
        (None, "None"),
        ([1, 2, 3], "list[int]"),
        ([], "list"),
        ([1, "a", 2], "list[int | str]"),
        ([1, None], "list[int | None]"),
        ({"a": [1, 2]}, "dict[str, list[int]]"),
        ({}, "dict"),
        ({1: {"x": 1.5}}, "dict[int, dict[str, float]]"),
        ((1, "a"), "tuple[int, str]"),
        ((), "tuple[()]"),
        (tuple(range(20)), "tuple[int, ...]"),
        ({1, 2}, "set[int]"),
        (frozenset({"a"}), "frozenset[str]"),
        (collections.deque([1.0]), "collections.deque[float]"),
        (collections.OrderedDict(a=1), "collections.OrderedDict[str, int]"),
        (np.zeros(3), "numpy.ndarray[float64]"),
        (np.zeros(3, dtype=np.int32), "numpy.ndarray[int32]"),
        (array.array("i"), "array.array"),
        ([[[[1]]]], "list[list[list[list]]]"),
    ],
)
def test_type_names(obj, expected):
    assert typeinfo.type_name(obj) == expected


def test_type_name_samples_spread_over_a_long_list():
    data = [0] * 1000
    data[999] = "end"
    data[500] = "mid"  # an evenly spread sample of 8 looks at index 500
    assert typeinfo.type_name(data) == "list[int | str]"


def test_type_name_of_user_class_is_qualified():
    class Point:
        pass

    name = typeinfo.type_name([Point()])
    assert name == f"list[{__name__}.test_type_name_of_user_class_is_qualified.<locals>.Point]"


# -- sizes -----------------------------------------------------------------------------------


def test_deep_size_counts_elements_once():
    s = "x" * 1000
    data = [s, s, s]
    result = sizes.measure(data)
    assert result.size == sys.getsizeof(data)
    assert result.deep_size == sys.getsizeof(data) + sys.getsizeof(s)
    assert not result.truncated


def test_deep_size_of_dict_of_lists():
    inner = [bytes(100), bytes(200)]
    data = {"k": inner}
    expected = sum(sys.getsizeof(o) for o in (data, "k", inner, inner[0], inner[1]))
    assert sizes.measure(data).deep_size == expected


def test_deep_size_skips_classes_and_singletons():
    class Thing:
        def __init__(self):
            self.value = None

    thing = Thing()
    result = sizes.measure(thing)
    # The instance and its attribute storage, never the class, its methods or None.
    assert result.deep_size < 2000
    assert result.deep_size >= sys.getsizeof(thing)


def test_deep_size_of_numpy_view_reaches_its_base():
    base = np.zeros(10_000)
    view = base[:10]
    assert sizes.measure(view).deep_size >= base.nbytes


def test_deep_size_is_bounded():
    data = [[i] for i in range(1000)]
    result = sizes.measure(data, max_objects=100)
    assert result.truncated
    assert result.objects == 100


def test_deep_size_handles_cycles():
    a: list = []
    b = [a]
    a.append(b)
    assert sizes.measure(a).deep_size == sys.getsizeof(a) + sys.getsizeof(b)


def test_contains_reports_lookup_hits():
    inner = [1]
    outer = [inner, [2]]
    result = sizes.measure(outer, lambda o: 7 if o is inner else None)
    assert result.contains == (7,)


# -- callsite --------------------------------------------------------------------------------


def _name_of(obj, name=None):
    return callsite.argument_source(sys._getframe(1), 0, "obj")


class _Holder:
    def __init__(self):
        self.items = [1]


def test_argument_source_plain_name():
    data = [1, 2]
    assert _name_of(data) == "data"


def test_argument_source_expressions():
    holder = _Holder()
    rows = [[1]]
    assert _name_of(holder.items) == "holder.items"
    assert _name_of(rows[0]) == "rows[0]"
    assert _name_of(obj=rows) == "rows"


def test_argument_source_multiline_and_nested():
    values = [3]
    result = (
        _name_of(
            values,
        ),
        _name_of(_name_of(values)),
    )
    assert result == ("values", "_name_of(values)")


def test_argument_source_via_attribute_call():
    class NS:
        name_of = staticmethod(_name_of)

    ns = NS()
    payload = {}
    assert ns.name_of(payload) == "payload"


def test_argument_source_without_source_is_none():
    namespace = {"_name_of": _name_of}
    exec(compile("x = 1\nresult = _name_of(x)", "<no-file>", "exec"), namespace)
    assert namespace["result"] is None


def test_argument_source_starred_is_none():
    args = ([1],)
    assert _name_of(*args) is None


# -- rows ------------------------------------------------------------------------------------


def test_row_columns_match_the_log_schema():
    from memscope.protocol.log_schema import TABLES

    for table, columns in COLUMNS.items():
        assert columns == tuple(n for n in TABLES[table].names if n != "pid"), table


def test_row_buffer_is_columnar_and_checks_columns():
    rows = RowBuffer()
    rows.add("scopes", tid=1, ts_ns=2, event="enter", scope_id=3, parent_id=0, name="a")
    rows.add("scopes", tid=1, ts_ns=3, event="exit", scope_id=3, parent_id=0, name="a")
    with pytest.raises(ValueError, match="wrong columns"):
        rows.add("scopes", tid=1)
    taken = rows.take()
    assert taken["scopes"]["event"] == ["enter", "exit"]
    assert len(rows) == 0 and rows.take() == {}
    merged = merge({"frames": {"frame_id": [1]}}, taken)
    assert set(merged) == {"frames", "scopes"}


def test_row_buffer_many_threads_lose_nothing():
    rows = RowBuffer()

    def work():
        for i in range(2000):
            rows.add("threads", tid=1, ts_ns=i, event="start", native_id=1, name="t")

    threads = [threading.Thread(target=work) for _ in range(8)]
    taken = []
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        taken.append(rows.take())
    for t in threads:
        t.join()
    taken.append(rows.take())
    assert sum(len(t["threads"]["ts_ns"]) for t in taken if t) == 16000


# -- scopes ----------------------------------------------------------------------------------


def test_scopes_nest_per_thread_and_emit_rows(monkeypatch):
    rows = RowBuffer()
    monkeypatch.setattr(scopes, "sink", rows)

    @scopes.scope("outer")
    def outer():
        with scopes.scope("inner"):
            return scopes.current()

    inner = outer()
    assert inner[1] == "inner" and scopes.current() is None
    table = rows.take()["scopes"]
    assert table["event"] == ["enter", "enter", "exit", "exit"]
    assert table["name"] == ["outer", "inner", "inner", "outer"]
    outer_id = table["scope_id"][0]
    assert table["parent_id"][1] == outer_id and table["parent_id"][0] == 0


def test_scopes_of_interleaved_asyncio_tasks_stay_apart(monkeypatch):
    import asyncio

    rows = RowBuffer()
    monkeypatch.setattr(scopes, "sink", rows)
    seen = {}

    @scopes.scope("handler")
    async def handler(name):
        with scopes.scope(name):
            await asyncio.sleep(0)  # the other task runs here, inside its own scope
            seen[name] = [n for _, n in [scopes.current()]]
            await asyncio.sleep(0)
        return scopes.current()

    async def main():
        return await asyncio.gather(handler("a"), handler("b"))

    outer = asyncio.run(main())
    assert seen == {"a": ["a"], "b": ["b"]}
    assert [name for _, name in outer] == ["handler", "handler"]
    table = rows.take()["scopes"]
    enters = {
        sid: (name, parent)
        for sid, name, parent, event in zip(
            table["scope_id"], table["name"], table["parent_id"], table["event"], strict=True
        )
        if event == "enter"
    }
    handlers = {sid for sid, (name, _) in enters.items() if name == "handler"}
    assert {enters[sid][1] for sid, (name, _) in enters.items() if name in "ab"} == handlers


def test_scopes_of_threads_stay_apart(monkeypatch):
    monkeypatch.setattr(scopes, "sink", RowBuffer())
    inside = threading.Event()
    release = threading.Event()
    seen = []

    def other():
        seen.append(scopes.current())
        with scopes.scope("other"):
            inside.set()
            release.wait(5)

    with scopes.scope("main"):
        thread = threading.Thread(target=other)
        thread.start()
        inside.wait(5)
        assert scopes.current()[1] == "main"
        release.set()
        thread.join()
    assert seen == [None]


def test_scope_requires_a_name():
    with pytest.raises(TypeError, match="non-empty name"):
        scopes.scope("")


# -- threads and tracking --------------------------------------------------------------------


def test_thread_watcher_sees_start_rename_and_exit():
    rows = RowBuffer()
    watcher = ThreadWatcher()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="worker-1")
    thread.start()
    watcher.poll(rows)
    thread.name = "worker-renamed"
    watcher.poll(rows)
    stop.set()
    thread.join()
    watcher.poll(rows)
    table = rows.take()["threads"]
    mine = [
        (e, n)
        for t, e, n in zip(table["tid"], table["event"], table["name"], strict=True)
        if t == thread.ident
    ]
    assert mine == [("start", "worker-1"), ("name", "worker-renamed"), ("exit", "worker-renamed")]


def test_record_builds_a_variables_row_with_contains():
    rows = RowBuffer()
    registry = Registry()
    inner = [1, 2]
    frame = sys._getframe()
    first = record(inner, None, frame, registry, rows, 0x1000, 5)
    outer = {"k": inner}
    second = record(outer, None, frame, registry, rows, 0x2000, 6)
    table = rows.take()["variables"]
    # The name is argument 0 of the call running in ``frame``: here, record(inner, ...).
    assert table["name"] == ["inner", "outer"]
    assert table["type_name"] == ["list[int]", "dict[str, list[int]]"]
    assert table["contains"] == [[], [first.var_id]]
    assert table["scope"][0] == "test_record_builds_a_variables_row_with_contains"
    assert second.deep_size >= sys.getsizeof(outer) + sys.getsizeof(inner)
    assert table["address"] == [0x1000, 0x2000]


# -- _deaths ---------------------------------------------------------------------------------


def _freed_at_death(make, watch):
    """Bytes tracemalloc sees freed when a fresh object dies (its free list emptied first)."""
    import tracemalloc

    from memscope.producer import _deaths

    hold = [make() for _ in range(2100)]  # takes every recycled object of the type
    tracemalloc.start()
    try:
        obj = make()
        if watch:
            assert _deaths.watch(obj)
        before = tracemalloc.get_traced_memory()[0]
        del obj
        return before - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        del hold


@pytest.mark.parametrize(
    "make",
    [lambda: [None], lambda: {"k": None}, lambda: (None, len([]))],
    ids=["list", "dict", "tuple"],
)
def test_a_watched_object_frees_its_block_instead_of_being_recycled(make):
    recycled = _freed_at_death(make, watch=False)
    freed = _freed_at_death(make, watch=True)
    assert freed - recycled >= type(make()).__basicsize__  # the object's own block


def test_watch_ignores_what_it_does_not_cover():
    from memscope.producer import _deaths

    class MyList(list):
        pass

    assert not _deaths.watch(MyList())
    assert not _deaths.watch(())
    assert not _deaths.watch(1.5)


def test_thread_watcher_names_a_thread_that_lived_between_two_polls():
    rows = RowBuffer()
    watcher = ThreadWatcher()
    watcher.poll(rows)
    rows.take()

    def run():
        watcher.born()  # what the session's thread-start hook does

    thread = threading.Thread(target=run, name="short-lived")
    thread.start()
    thread.join()
    watcher.poll(rows)
    table = rows.take()["threads"]
    mine = [
        (e, n)
        for t, e, n in zip(table["tid"], table["event"], table["name"], strict=True)
        if t == thread.ident
    ]
    assert mine == [("start", "short-lived"), ("exit", "short-lived")]
