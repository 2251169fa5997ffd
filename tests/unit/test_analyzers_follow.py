"""`memscope analyze --follow`: incremental rounds over a growing log."""

import pyarrow as pa
import pyarrow.compute as pc

from memscope.analyzers import ANALYZERS, run_all
from memscope.analyzers.common import AnalyzerOptions
from memscope.analyzers.follow import Follower, follow
from memscope.analyzers.log_builder import sample_log, split_memory, write_log
from memscope.config import Settings
from memscope.eventlog.log import LogWriter


def _halves(tables):
    return split_memory(tables)


def _append(events, tables):
    writer = LogWriter(events, Settings().replace(segment_max_bytes=1))
    for name, table in tables.items():
        if table.num_rows:
            writer.append(name, pa.Table.from_batches(table.to_batches(), table.schema))
    writer.close()


def test_rounds_read_only_new_rows_and_end_equal_to_a_full_run(tmp_path):
    tables = sample_log().tables()
    first, second = _halves(tables)
    events = tmp_path / "run" / "events"
    write_log(first, events, memory_segments=2)
    follower = Follower(events, AnalyzerOptions(out_dir=tmp_path / "live"))
    assert follower.step() is not None
    assert follower.events == first["memory"].num_rows
    assert follower.step() is None  # nothing new: nothing rewritten
    _append(events, second)
    assert follower.step() is not None
    # every memory row was read exactly once over the two rounds
    assert follower.events == tables["memory"].num_rows
    run_all(events, tmp_path / "full")
    for a in ANALYZERS.values():
        live = (tmp_path / "live" / a.file_name()).read_bytes()
        assert live == (tmp_path / "full" / a.file_name()).read_bytes(), a.file_name()


def test_follow_stops_after_max_rounds(tmp_path):
    events = tmp_path / "run" / "events"
    write_log(sample_log().tables(), events)
    assert (
        follow(events, tmp_path / "o", only=["memory"], interval=0.01, quiet=True, max_rounds=1)
        == 0
    )
    assert (tmp_path / "o" / "snapshot_memory_analysis.json").exists()
    assert not (tmp_path / "o" / "snapshot_lifetime.json").exists()


def test_an_open_segment_is_continued_where_the_last_round_stopped(tmp_path):
    tables = sample_log().tables()
    memory = tables["memory"]
    events = tmp_path / "run" / "events"
    writer = LogWriter(events, Settings())
    # exit rows come last (a producer's final batch): until then the processes are running
    exits = pc.equal(tables["processes"].column("event"), "exit")
    tables["processes"] = tables["processes"].filter(pc.invert(exits))
    for name, table in tables.items():
        if name != "memory" and table.num_rows:
            writer.append(name, table)
    writer.append("memory", memory.slice(0, 10))
    writer.flush()
    follower = Follower(events, AnalyzerOptions(out_dir=tmp_path / "live"))
    follower.step()
    held = sum(b.num_rows for b in follower.state.held)
    # the log is still written: its last second waits (the sample spans less than that)
    assert (follower.events, held) == (0, 10)
    writer.append("memory", memory.slice(10))  # the same, still open segment
    writer.flush()
    follower.step()
    assert follower.events + sum(b.num_rows for b in follower.state.held) == memory.num_rows
    assert follower.events == 0
    writer.append("processes", sample_log().tables()["processes"].filter(exits))
    writer.flush()
    follower.step()  # every process ended: nothing of theirs can come later, nothing waits
    assert follower.events == memory.num_rows
    writer.close()
    assert follower.step() is not None  # closed now: nothing new to match, files refreshed
    assert follower.events == memory.num_rows
    run_all(events, tmp_path / "full")
    for a in ANALYZERS.values():
        assert (tmp_path / "live" / a.file_name()).read_bytes() == (
            tmp_path / "full" / a.file_name()
        ).read_bytes()


def test_live_stats_follow_a_growing_log(tmp_path):
    from memscope.analyzers.follow import LiveStats
    from memscope.analyzers.memstats import process_stats
    from memscope.analyzers.runner import connect_analyzed as connect

    tables = sample_log().tables()
    first, second = _halves(tables)
    events = tmp_path / "run" / "events"
    write_log(first, events)
    live = LiveStats(events)
    assert live.stats() == process_stats(connect(events))
    _append(events, second)
    assert live.stats(100) == process_stats(connect(events), 100)
    # MemoryStats' seed figures so far: those of the log (seed_api), the leaks being the
    # blocks still alive (the process may not have ended)
    from memscope.analyzers.seed_api import seed_figures

    con = connect(events)
    seeds = live.seed_figures(100)
    assert seeds["peak_allocations"] == seed_figures(con, 100)["peak_allocations"]
    assert (seeds["leaked_allocations"], seeds["leaked_memory"]) == (
        live.stats(100)["active_allocations"],
        live.stats(100)["active_memory"],
    )
    assert live.stats()["total_allocations"] == process_stats(connect(events))["total_allocations"]


def test_live_stats_for_keeps_one_matcher_per_log(tmp_path):
    from memscope.analyzers import follow as memstats  # live_stats_for, forget_live
    from memscope.analyzers.memstats import process_stats
    from memscope.analyzers.runner import connect_analyzed as connect

    tables = sample_log().tables()
    first, second = _halves(tables)
    events = tmp_path / "run" / "events"
    write_log(first, events)
    live = memstats.live_stats_for(events)
    try:
        assert memstats.live_stats_for(str(events) + "/") is live
        assert live.stats() == process_stats(connect(events))
        assert live.stats(100) == process_stats(connect(events), 100)
        assert live.refreshes == 1  # the unchanged log is not matched again
        read = dict(live._follower.state.cursor.rows)
        _append(events, second)
        assert memstats.live_stats_for(events).stats() == process_stats(connect(events))
        assert live.refreshes == 2
        # only the new rows were fed: the first segment's count did not move
        assert all(
            live._follower.state.cursor.rows[k] == n
            for k, n in read.items()
            if k in live._follower.state.cursor.finished
        )
    finally:
        memstats.forget_live(events)
    assert memstats.live_stats_for(events) is not live
    memstats.forget_live(events)
