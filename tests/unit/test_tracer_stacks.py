"""Stack ids: nested calls resolve to the right file:line:function through frames/stacks."""

import inspect

import numpy as np
from tracer_util import capture_run, resolve_stack

from memscope.producer import capture

MARK = 3_333_331


def inner():
    return bytearray(MARK)  # the allocation under test


def middle():
    return inner()


def outer():
    return middle()


def _line_of(func, text):
    lines, start = inspect.getsourcelines(func)
    return start + next(i for i, line in enumerate(lines) if text in line)


def test_nested_calls_resolve_to_file_line_function():
    ev, rare, keep = capture_run(outer)
    (hit,) = np.flatnonzero(ev["size"] == MARK + 1)
    stack = resolve_stack(rare, int(ev["stack_id"][hit]))
    me = __file__.rsplit("/", 1)[-1]
    assert stack[:3] == [
        ("inner", me, _line_of(inner, "bytearray(MARK)")),
        ("middle", me, _line_of(middle, "return inner()")),
        ("outer", me, _line_of(outer, "return middle()")),
    ]
    assert ("capture_run", "tracer_util.py") == stack[3][:2]
    del keep


def test_same_site_twice_gets_the_same_id_and_other_sites_differ():
    def twice():
        a = [outer() for _ in range(2)]
        b = inner()
        return a, b

    ev, rare, keep = capture_run(twice)
    ids = ev["stack_id"][ev["size"] == MARK + 1]
    assert len(ids) == 3
    assert ids[0] == ids[1] != ids[2]
    assert resolve_stack(rare, int(ids[2]))[0][0] == "inner"
    del keep


def test_current_stack_id_matches_the_allocation_stack_line():
    def here():
        sid = capture.current_stack_id()
        return sid

    ev, rare, sid = capture_run(here)
    stack = resolve_stack(rare, sid)
    assert stack[0] == (
        "test_current_stack_id_matches_the_allocation_stack_line.<locals>.here",
        __file__.rsplit("/", 1)[-1],
        _line_of(here, "current_stack_id()"),
    )


def test_frames_and_stacks_are_sent_once():
    results = [capture_run(outer) for _ in range(2)]  # same call sites both times
    (ev1, rare1, _), (ev2, rare2, _) = results
    sid1 = int(ev1["stack_id"][ev1["size"] == MARK + 1][0])
    sid2 = int(ev2["stack_id"][ev2["size"] == MARK + 1][0])
    assert sid1 == sid2
    assert sid1 in rare1["stacks"]["stack_id"]
    assert sid2 not in rare2.get("stacks", {}).get("stack_id", [])


def test_deep_recursion_is_truncated_not_crashing():
    def rec(n):
        return rec(n - 1) if n else bytearray(MARK)

    ev, rare, keep = capture_run(lambda: rec(400))
    (hit,) = np.flatnonzero(ev["size"] == MARK + 1)
    stack = resolve_stack(rare, int(ev["stack_id"][hit]))
    assert 100 <= len(stack) <= 128
    assert all(frame[0].endswith("rec") for frame in stack)
    del keep


def gen_alloc():
    yield bytearray(MARK)  # allocated inside a generator frame


def consume():
    return next(gen_alloc())


def test_generator_frames_resolve_with_their_consumer():
    ev, rare, keep = capture_run(consume)
    (hit,) = np.flatnonzero(ev["size"] == MARK + 1)
    stack = resolve_stack(rare, int(ev["stack_id"][hit]))
    me = __file__.rsplit("/", 1)[-1]
    assert stack[0] == ("gen_alloc", me, _line_of(gen_alloc, "yield bytearray"))
    assert stack[1] == ("consume", me, _line_of(consume, "next(gen_alloc())"))
    del keep
