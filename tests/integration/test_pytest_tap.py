"""The in-process window tap (pytest_tap) answers as the log-reading helper (pytest_window)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pytest_memray_compat import _window_log

from memscope.analyzers.log_builder import write_log
from memscope.integrations.pytest_tap import WindowTap
from memscope.integrations.pytest_window import WindowReader
from memscope.producer import session
from memscope.protocol.records import encode_cols1, encode_rec1
from memscope.protocol.wire import MEMORY_COLUMNS


def _drains(tables: dict, pid: int) -> list[tuple[list[dict], dict]]:
    """The log's events as a session's drains: stacks first, then one chunk per thread run."""
    rare = {
        name: {
            col: tables[name].column(col).to_pylist()
            for col in tables[name].column_names
            if col != "pid"
        }
        for name in ("stacks", "frames")
    }
    memory = tables["memory"].to_pydict()
    rows = [i for i, p in enumerate(memory["pid"]) if p == pid]
    chunks = []
    start = 0
    while start < len(rows):  # runs of one thread, alternately rec1 and cols1
        end = start
        while end < len(rows) and memory["tid"][rows[end]] == memory["tid"][rows[start]]:
            end += 1
        cols = {
            name: np.array([memory[name][i] for i in rows[start:end]]) for name in MEMORY_COLUMNS
        }
        encode = encode_rec1 if len(chunks) % 2 == 0 else encode_cols1
        chunks.append(encode(memory["tid"][rows[start]], cols))
        start = end
    return [([], rare), (chunks[:2], {}), (chunks[2:], {})]


@pytest.mark.parametrize(
    ("t0", "t1", "tid"),
    [
        (100, 200, None),
        (100, 200, 1),
        (100, 200, 2),
        (0, 1000, None),
        (400, 600, None),
        (141, 142, None),
    ],
)
def test_the_tap_answers_as_the_window_reader(
    tmp_path: Path, t0: int, t1: int, tid: int | None
) -> None:
    b, pid = _window_log(tmp_path)
    tables = b.tables()
    tap = WindowTap()
    drains = _drains(tables, pid)
    tap(*drains[0])  # the stacks of the session, seen while no window is armed
    tap.arm()
    for drain in drains[1:]:
        tap(*drain)
    got = tap.answer(t0, t1, "/t/test_a.py", "test_it", tid)
    want = WindowReader(write_log(tables, tmp_path / "events")).answer(
        {
            "pid": pid,
            "t0": t0,
            "t1": t1,
            "filename": "/t/test_a.py",
            "function": "test_it",
            "tid": tid,
        }
    )
    assert got == want
    assert tap.disarm() and not tap.disarm()  # the chunks go with the window


def test_chunks_drained_while_no_window_is_armed_are_not_kept() -> None:
    tap = WindowTap()
    chunk = encode_rec1(
        1,
        {name: np.array([0 if name != "ts_ns" else 5]) for name in MEMORY_COLUMNS}
        | {"size": np.array([64]), "address": np.array([8])},
    )
    tap([chunk], {})
    tap.arm()
    assert tap.answer(0, 10, "f.py", "test_x")["events"] == 0


def test_a_failing_tap_is_dropped_and_the_drain_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(chunks: list, rare: dict) -> None:
        raise ValueError("no")

    monkeypatch.setattr(session, "taps", [broken])
    # (the drain shields its thread from signals: not this one, whose children inherit it)
    monkeypatch.setattr(session, "shield_current_thread", lambda: None)
    fake = type(
        "Capture",
        (),
        {
            "drain": staticmethod(lambda commit: ([{"n": 1}], {})),
            "arena_path": staticmethod(lambda: None),
        },
    )()
    s = session.Session.__new__(session.Session)
    s.capture, s.threads_final = fake, True
    s.rows = session.RowBuffer()
    s_chunks, _ = session.Session.drain(s)
    assert s_chunks == [{"n": 1}] and session.taps == []
