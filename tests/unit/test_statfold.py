"""The fold's running totals alone (``_statfold.StatsFold``) equal the full fold's figures."""

from __future__ import annotations

import numpy as np
import pytest
from test_fold import cols, feed_pieces, random_stream

from memscope.analyzers._fold import Fold
from memscope.analyzers._statfold import StatsFold

#: The figures both keep (``processes`` columns of the full fold).
KEYS = (
    "events",
    "allocations",
    "bytes_allocated",
    "frees",
    "bytes_freed",
    "live_blocks",
    "live_bytes",
    "reused",
    "unmatched_frees",
    "peak_bytes",
    "peak_ts_ns",
    "last_ts_ns",
)
ALLOC, REALLOC, FREE = 0, 2, 3
#: feed's columns among the full fold's ten (pid, ts_ns, kind, address, old_address, size).
PICK = (0, 3, 4, 6, 7, 8)


def light_feed(light: StatsFold, columns: list[np.ndarray]) -> None:
    light.feed(*(columns[i] for i in PICK))


class Light(StatsFold):
    """Fed the full fold's ten columns (for ``feed_pieces``)."""

    def feed(self, *columns):  # type: ignore[override]
        super().feed(*(columns[i] for i in PICK))


def assert_equal_totals(full: Fold, light: StatsFold) -> None:
    table = full.export(["processes"])["processes"]
    assert sorted(light.pids()) == table["pid"].tolist()
    for i, pid in enumerate(table["pid"].tolist()):
        totals = light.totals(pid)
        assert totals is not None
        assert {k: totals[k] for k in KEYS} == {k: int(table[k][i]) for k in KEYS}, pid


@pytest.mark.parametrize("seed", range(30))
def test_equal_to_the_full_fold_on_random_streams(seed):
    rng = np.random.default_rng(seed)
    stream = random_stream(rng, int(rng.integers(1, 3000)))
    full, light = Fold(), Light()
    feed_pieces([full, light], stream, rng)
    assert_equal_totals(full, light)


def test_reuse_double_free_unmatched_and_reallocs():
    rows = [
        {"kind": ALLOC, "address": 16, "size": 10},
        {"kind": ALLOC, "address": 16, "size": 30},  # reused: 10 bytes leave, not a free
        {"kind": FREE, "address": 16},
        {"kind": FREE, "address": 16},  # repeated end: unmatched
        {"kind": FREE, "address": 999},  # never allocated: unmatched
        {"kind": REALLOC, "address": 32, "old_address": 0, "size": 5},
        {"kind": REALLOC, "address": 48, "old_address": 32, "size": 7},
        {"kind": REALLOC, "address": 0, "old_address": 48, "size": 0},
        {"kind": FREE, "address": 0},  # ignored
        {"kind": 9, "address": 64},  # another kind: counts as an event only
    ]
    light = StatsFold()
    light_feed(light, cols(rows))
    totals = light.totals(1)
    assert totals is not None
    assert {
        k: totals[k]
        for k in (
            "allocations",
            "bytes_allocated",
            "frees",
            "bytes_freed",
            "live_blocks",
            "live_bytes",
            "reused",
            "unmatched_frees",
            "peak_bytes",
            "events",
        )
    } == {
        "allocations": 4,
        "bytes_allocated": 52,
        "frees": 3,
        "bytes_freed": 42,
        "live_blocks": 0,
        "live_bytes": 0,
        "reused": 1,
        "unmatched_frees": 2,
        "peak_bytes": 30,
        "events": 9,
    }
    assert totals["peak_ts_ns"] == 10
    full = Fold()
    full.feed(*cols(rows))
    assert_equal_totals(full, light)
    assert light.totals(2) is None


def test_a_large_live_set_grows_and_shrinks_the_map():
    n = 200_000
    addresses = np.arange(1, n + 1, dtype=np.uint64) * 16
    both = np.concatenate([addresses, addresses[::-1]])
    kinds = np.concatenate([np.full(n, ALLOC), np.full(n, FREE)]).astype(np.uint8)
    m = 2 * n
    stream = [
        np.full(m, 7, np.uint32),
        np.ones(m, np.uint64),
        np.arange(m, dtype=np.uint64),
        np.arange(m, dtype=np.int64),
        kinds,
        np.full(m, 2, np.uint8),
        both,
        np.zeros(m, np.uint64),
        np.full(m, 8, np.uint64),
        np.ones(m, np.uint32),
    ]
    light, full = StatsFold(), Fold()
    light_feed(light, stream)
    full.feed(*stream)
    assert_equal_totals(full, light)
    totals = light.totals(7)
    assert totals is not None and totals["peak_bytes"] == 8 * n and totals["live_blocks"] == 0


def test_bad_columns_raise():
    light = StatsFold()
    good = cols([{"kind": ALLOC, "address": 16, "size": 1}])
    picked = [good[i] for i in PICK]
    with pytest.raises(TypeError):
        light.feed(*picked[:5])
    with pytest.raises(ValueError):
        light.feed(*picked[:5], picked[5].astype(np.uint32))
    with pytest.raises(ValueError):
        light.feed(picked[0], np.zeros(2, np.int64), *picked[2:])
    light.set_sampling(1, 100)  # ignored
    light.watch(1, 16, 0)
    assert light.pids() == []


def test_running_totals_read_then_taken_equal_the_logs_stats(tmp_path):
    """Folded from the log's first half, then given the second half as a broker writes it."""
    import pyarrow as pa

    from memscope.analyzers.live_totals import RunningTotals
    from memscope.analyzers.log_builder import sample_log, split_memory, write_log
    from memscope.analyzers.memstats import process_stats
    from memscope.analyzers.runner import connect_analyzed
    from memscope.config import Settings
    from memscope.eventlog.log import LogWriter

    tables = sample_log().tables()
    first, second = split_memory(tables)
    events = tmp_path / "run" / "events"
    write_log(first, events)
    totals = RunningTotals.open(events)
    assert totals is not None
    totals.update()
    # (in one piece: the log's reader sorts it as one window too; events of several threads
    # cut elsewhere can be folded in another order, see memscope.broker.totals)
    memory = second["memory"].combine_chunks()
    twin = RunningTotals.open(events)
    assert twin is not None
    twin.update()
    totals.take(memory.to_batches(), second["processes"].to_batches())
    twin.take_columns(
        {n: memory.column(n).to_numpy() for n in memory.schema.names},
        second["processes"].to_batches(),
    )
    writer = LogWriter(events, Settings().replace(segment_max_bytes=1))
    for name, table in second.items():
        if table.num_rows:
            writer.append(name, pa.Table.from_batches(table.to_batches(), table.schema))
    writer.close()
    con = connect_analyzed(events)
    full = [
        pid
        for pid in {int(p) for p in tables["processes"].column("pid").to_pylist()}
        if totals.mode(pid) == "full"
    ]
    assert full
    for pid in full:
        assert totals.stats(pid) == twin.stats(pid) == process_stats(con, pid)
    assert totals.state.events == tables["memory"].num_rows
