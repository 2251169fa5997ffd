"""pytest_measure from the fold equals a plain replay of its definition, on random logs."""

from __future__ import annotations

import numpy as np
import pytest

from memscope.analyzers.log_builder import LogBuilder, write_log
from memscope.analyzers.views import connect_tables
from memscope.integrations.pytest_measure import main, measure

TEST = ("test_it", "/t/test_a.py", 5)


def _random_log(seed: int) -> tuple[LogBuilder, list[tuple]]:
    rng = np.random.default_rng(seed)
    b = LogBuilder()
    pid = 7
    b.process(pid, 0)
    own = [
        b.stack(pid, [("main", "/t/run.py", 1), TEST, (f"h{i}", "/t/h.py", i)]) for i in range(3)
    ]
    other = [b.stack(pid, [("main", "/t/run.py", 1), (f"o{i}", "/t/o.py", i)]) for i in range(3)]
    events, live, ts = [], [], 0
    for _ in range(300):
        ts += int(rng.integers(1, 5))  # distinct times: the replay needs no tie rule
        if live and rng.random() < 0.45:
            address = live.pop(int(rng.integers(0, len(live))))
            b.free(pid, ts, address)
            events.append(("free", ts, address, 0, 0))
        else:
            address = 0x1000 + 16 * int(rng.integers(0, 64))
            if address in live:
                continue
            size, stack = int(rng.integers(1, 500)), int(rng.choice(own + other))
            b.alloc(pid, ts, address, size, stack_id=stack)
            live.append(address)
            events.append(("alloc", ts, address, size, stack))
    return b, events, own


def _replay(events, own, t0, t1):
    level = peak = 0
    blocks: dict[int, tuple[int, int]] = {}
    for kind, ts, address, size, stack in events:
        if not t0 <= ts <= t1:
            continue
        if kind == "alloc":
            blocks[address] = (size, stack)
            level += size
            peak = max(peak, level)
        elif address in blocks:
            level -= blocks.pop(address)[0]
    leaked = sum(size for size, stack in blocks.values() if stack in own)
    return peak, leaked


@pytest.mark.parametrize("seed", range(4))
def test_peak_and_leaks_equal_a_replay_of_their_definition(seed):
    b, events, own = _random_log(seed)
    con = connect_tables(b.tables())
    end = events[-1][1]
    rng = np.random.default_rng(100 + seed)
    for _ in range(5):
        t0, t1 = sorted(int(x) for x in rng.integers(0, end + 1, 2))
        got = measure(con, 7, t0, t1, TEST[1], TEST[0])
        assert (got["peak_bytes"], got["leaked_bytes"]) == _replay(events, own, t0, t1)
        assert sum(s["bytes"] for s in got["peak_sites"]) <= got["peak_bytes"]


def test_the_helper_reads_a_log_on_disk(tmp_path, capsys):
    import json

    b, events, own = _random_log(9)
    write_log(b.tables(), tmp_path / "events", memory_segments=3)
    end = events[-1][1]
    assert main([str(tmp_path / "events"), "7", "0", str(end), TEST[1], TEST[0]]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["peak_bytes"], answer["leaked_bytes"]) == _replay(events, own, 0, end)
    assert main([str(tmp_path / "nowhere"), "7", "0", "1", "f", "g"]) == 1
    assert "Error" in capsys.readouterr().err
