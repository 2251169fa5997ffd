"""Retention: a simulated week of a 1 M events/s service under a disk bound, and its parts."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from memscope.analyzers.broker_analysis import checkpoint_fold, log_analysis
from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.runner import run_all
from memscope.commands.main import main
from memscope.config import Settings, SettingsError, load_settings
from memscope.eventlog import log as log_module
from memscope.eventlog import segments as _segments
from memscope.eventlog.log import LogWriter, open_log
from memscope.eventlog.retention import (
    RETIRED_SUFFIX,
    Retention,
    RetentionPolicy,
    detail_window,
    disk_bytes,
    finish_interrupted,
    plan,
)
from memscope.protocol.wire import KIND_ALLOC, KIND_FREE

HOUR_NS = 3600 * 10**9
#: 1 M events/s is 3.6e9 events an hour; scaled down by 10^6 to 3,600 events per hour.
EVENTS_PER_HOUR = 3_600
HOURS = 7 * 24
#: Day 1, 03:00-04:00: one site allocates 400 blocks of 1 MiB and frees them an hour later.
SPIKE_HOUR, SPIKE_BLOCKS, SPIKE_SIZE = 3, 400, 1 << 20
T0_WALL = 1_796_000_000 * 10**9  # the simulated week's start, wall clock


def hour_of_events(hour: int, stacks: list[int]) -> pa.Table:
    """One simulated hour of one process: steady short-lived blocks at two sites, a spike."""
    rng = np.random.default_rng(hour)
    n = EVENTS_PER_HOUR // 2
    base = hour * HOUR_NS
    ts_alloc = base + np.sort(rng.integers(0, HOUR_NS // 2, n))
    sizes = rng.integers(64, 2048, n).astype(np.uint64)
    addresses = (0x10_0000 + 64 * np.arange(n)).astype(np.uint64)  # reused every hour
    site = np.where(rng.random(n) < 0.6, stacks[1], stacks[2]).astype(np.uint32)
    ts = np.concatenate([ts_alloc, ts_alloc + HOUR_NS // 2])
    kind = np.concatenate([np.full(n, KIND_ALLOC), np.full(n, KIND_FREE)]).astype(np.uint8)
    address = np.concatenate([addresses, addresses])
    size = np.concatenate([sizes, np.zeros(n, np.uint64)])
    stack = np.concatenate([site, site])
    spike = SPIKE_BLOCKS if hour in (SPIKE_HOUR, SPIKE_HOUR + 1) else 0
    if spike:
        blocks = 0x4000_0000 + SPIKE_SIZE * np.arange(spike, dtype=np.uint64)
        ts = np.concatenate([ts, base + 1 + np.arange(spike)])
        kind = np.concatenate(
            [kind, np.full(spike, KIND_ALLOC if hour == SPIKE_HOUR else KIND_FREE, np.uint8)]
        )
        address = np.concatenate([address, blocks])
        size = np.concatenate(
            [size, np.full(spike, SPIKE_SIZE if hour == SPIKE_HOUR else 0, np.uint64)]
        )
        stack = np.concatenate([stack, np.full(spike, stacks[0], np.uint32)])
    order = np.argsort(ts, kind="stable")
    count = len(ts)
    return pa.table(
        {
            "pid": np.full(count, 4242, np.uint32),
            "tid": np.ones(count, np.uint64),
            "seq": (hour * 10**6 + np.arange(count)).astype(np.uint64),
            "ts_ns": ts[order],
            "kind": kind[order],
            "domain": np.full(count, 2, np.uint8),
            "address": address[order],
            "old_address": np.zeros(count, np.uint64),
            "size": size[order],
            "stack_id": stack[order],
        }
    )


def small_tables() -> tuple[dict[str, pa.Table], list[int]]:
    b = LogBuilder()
    b.process(4242, 0, host="svc-1", argv=("service.py",))
    stacks = [
        b.stack(4242, [("main", "svc.py", 1), (name, "svc.py", line)])
        for name, line in (("load_snapshot", 10), ("handle", 20), ("encode", 30))
    ]
    tables = {name: t for name, t in b.tables().items() if name != "memory" and t.num_rows}
    return tables, stacks


class Clock:
    """The injected wall clock of the simulation (ns)."""

    def __init__(self) -> None:
        self.now = T0_WALL

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def simulated_clock(monkeypatch):
    """The log writer's and the segments' wall clock, driven by the test."""
    clock = Clock()
    import time as real_time

    fake = types.SimpleNamespace(
        time_ns=clock,
        monotonic=real_time.monotonic,
        monotonic_ns=real_time.monotonic_ns,
        time=real_time.time,
    )
    monkeypatch.setattr(log_module, "time", fake)
    monkeypatch.setattr(_segments, "time", fake)
    return clock


def write_week(
    events: Path, settings: Settings, clock: Clock, retention: RetentionPolicy | None
) -> tuple[list[int], int]:
    """Write the week hour by hour (a segment an hour), retention after each segment."""
    tables, stacks = small_tables()
    writer = LogWriter(events, settings)
    for name, table in tables.items():
        writer.append(name, table)
    keeper = Retention(writer, retention, checkpoint_fold, clock=clock) if retention else None
    sizes, passes = [], 0
    for hour in range(HOURS):
        clock.now = T0_WALL + hour * HOUR_NS
        writer.append("memory", hour_of_events(hour, stacks))
        sizes.append(disk_bytes(events))  # the open segment full
        clock.now += HOUR_NS - 1
        writer.rotate_due(now=float("inf"))  # closed at the end of its hour
        sizes.append(disk_bytes(events))
        if keeper is not None:
            keeper.run_once()
            passes += 1
            sizes.append(disk_bytes(events))
    writer.close()
    return sizes, passes


def test_a_simulated_week_stays_within_the_bound_and_reports_the_whole_run(
    tmp_path, simulated_clock, capsys
):
    segment = 128 * 1024
    bound = 2 * 1024 * 1024
    settings = Settings(
        segment_max_bytes=segment, log_retention_bytes=bound, log_retention_age="7d"
    )
    policy = RetentionPolicy.from_settings(settings)
    retained = tmp_path / "retained"
    sizes, passes = write_week(retained / "events", settings, simulated_clock, policy)
    assert passes == HOURS
    assert max(sizes) <= bound, f"the log reached {max(sizes)} bytes, over {bound}"
    manifest = json.loads((retained / "events" / "manifest.json").read_text())
    window = detail_window(manifest)
    assert window is not None and window["retired"]["segments"] > HOURS // 2
    kept = [e for e in manifest["segments"] if e["table"] == "memory"]
    assert len(kept) + window["retired"]["segments"] == HOURS
    # the spike's hours are among the retired segments (segment n is hour n)
    assert min(int(e["file"].rsplit("-", 1)[1][:6]) for e in kept) > SPIKE_HOUR + 1
    # the same week with no retention: the reference figures
    full = tmp_path / "full"
    full_sizes, _ = write_week(
        full / "events", Settings(segment_max_bytes=segment), simulated_clock, None
    )
    assert max(full_sizes) > 2 * bound  # retention was needed
    run_all(full, full / "reports", only=["memory", "performance"])
    assert main(["report", str(retained), "--out", str(retained / "reports")]) == 0
    assert "raw events are kept in full detail from" in capsys.readouterr().err
    page = (retained / "reports" / "dashboard.html").read_text()
    assert f"raw events are kept in full detail from {window['from']}" in page
    memory = {
        run.name: json.loads((run / "reports" / "snapshot_memory_analysis.json").read_text())
        for run in (retained, full)
    }
    perf = {
        run.name: json.loads((run / "reports" / "snapshot_performance.json").read_text())
        for run in (retained, full)
    }
    peak = memory["full"]["memory_stats"]["peak_memory"]
    assert peak >= SPIKE_BLOCKS * SPIKE_SIZE  # the day-1 spike, retired from the raw log
    assert memory["retained"]["memory_stats"]["peak_memory"] == peak
    assert (
        memory["retained"]["memory_stats"]["total_allocations"]
        == memory["full"]["memory_stats"]["total_allocations"]
        == HOURS * EVENTS_PER_HOUR // 2 + SPIKE_BLOCKS
    )
    assert perf["retained"]["hottest_sites"] == perf["full"]["hottest_sites"]
    # a broker's live totals (Tracker.get_stats) start from the checkpoint too
    from memscope.analyzers.follow import LiveStats

    assert LiveStats(retained).stats(4242)["peak_memory"] == peak
    top = perf["retained"]["hottest_sites"]["by_bytes"][0]
    assert "load_snapshot" in top["location"]
    # reports and stats say what is kept in full detail; raw queries see that window only
    import jsonschema

    from memscope.analyzers.common import load_schema

    for kind, report in (
        ("memory_analysis", memory["retained"]),
        ("performance", perf["retained"]),
    ):
        jsonschema.validate(report, load_schema(kind))
    meta = memory["retained"]["metadata"]["detail_window"]
    assert meta["retired"]["segments"] == window["retired"]["segments"]
    assert "detail_window" not in memory["full"]["metadata"]
    assert main(["stats", str(retained)]) == 0
    out = capsys.readouterr().out
    assert f"full detail       from {window['from']}" in out
    assert f"{window['retired']['segments']} older segments" in out
    assert (
        main(["query", str(retained), "select count(*) as n from events", "--format", "json"]) == 0
    )
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert rows[0]["n"] == sum(e["rows"] for e in kept)
    assert f"raw-event views cover {window['from']} to {window['to']} only" in captured.err


def entry(number: int, closed_ns: int, nbytes: int = 100, table: str = "memory") -> dict:
    return {
        "table": table,
        "file": f"{table}/{table}-{number:06d}.arrow",
        "closed": True,
        "closed_ns": closed_ns,
        "created_ns": closed_ns - 10,
        "bytes": nbytes,
        "rows": 5,
    }


def test_plan_retires_oldest_first_only_what_is_folded_and_never_the_newest():
    segments = [entry(i, 1000 + i) for i in range(5)]
    manifest = {"segments": segments}
    folded = [e["file"] for e in segments]
    by_bytes = RetentionPolicy(max_bytes=1000)
    # 650 used, bound 1000 - 0 headroom: nothing to do
    assert plan(manifest, by_bytes, 2000, 650, folded) == []
    # 1250 used: three segments of 100 bring it to 950
    assert [e["file"] for e in plan(manifest, by_bytes, 2000, 1250, folded)] == [
        e["file"] for e in segments[:3]
    ]
    # the newest segment stays even when everything is over the bound
    assert segments[4] not in plan(manifest, by_bytes, 2000, 10**9, folded)
    # a segment the checkpoint has not folded stops the plan: strictly oldest first
    assert plan(manifest, by_bytes, 2000, 10**9, folded[1:]) == []
    assert plan(manifest, by_bytes, 2000, 10**9, folded[:2]) == segments[:2]
    # room for the open segment and the checkpoint's second copy
    headroom = RetentionPolicy(max_bytes=1000, headroom_bytes=200)
    assert len(plan(manifest, headroom, 2000, 1000, folded, state_bytes=100)) == 3
    # by age: closed more than 1.5 us ago (2000 - 1.5e3 ns = 500: none; at 2503: three)
    by_age = RetentionPolicy(max_age_s=1.5e-6)
    assert plan(manifest, by_age, 2000, 0, folded) == []
    assert plan(manifest, by_age, 2503, 0, folded) == segments[:3]
    # other tables and open segments are never retired
    other = {
        "segments": [
            entry(0, 1, table="processes"),
            entry(1, 2, table="processes"),
            {**entry(0, 1), "closed": False},
            entry(1, 2),
        ]
    }
    assert plan(other, by_bytes, 10**9, 10**9, [e["file"] for e in other["segments"]]) == []


def test_an_interrupted_retirement_is_finished(tmp_path):
    b = LogBuilder()
    b.alloc(1, 10, 0x10, 8)
    writer = LogWriter(tmp_path / "events")
    writer.append("memory", b.tables()["memory"])
    writer.rotate_due(now=float("inf"))
    writer.append("memory", b.tables()["memory"])
    writer.rotate_due(now=float("inf"))
    first = writer.manifest["segments"][0]
    path = tmp_path / "events" / first["file"]
    # the crash came after the rename, before the manifest was rewritten
    path.rename(path.with_name(path.name + RETIRED_SUFFIX))
    # the next start of the broker finishes it
    Retention(writer, RetentionPolicy(), checkpoint_fold, clock=lambda: 123)
    assert not list((tmp_path / "events" / "memory").glob(f"*{RETIRED_SUFFIX}"))
    assert first["file"] not in [e["file"] for e in writer.manifest["segments"]]
    assert writer.manifest["retired"]["segments"] == 1
    # the crash came after the manifest, before the delete: the file just goes
    stray = tmp_path / "events" / "memory" / f"memory-000099.arrow{RETIRED_SUFFIX}"
    stray.write_bytes(b"x")
    assert finish_interrupted(writer, 124) == 1 and not stray.exists()
    assert writer.manifest["retired"]["segments"] == 1
    writer.close()
    reader = open_log(tmp_path / "events")
    assert len(reader.segments("memory")) == 1 and reader.problems == []


def test_a_report_without_the_checkpoint_says_it_covers_the_kept_segments_only(
    tmp_path, simulated_clock
):
    settings = Settings(segment_max_bytes=64 * 1024, log_retention_bytes=128 * 1024)
    tables, stacks = small_tables()
    writer = LogWriter(tmp_path / "events", settings)
    for name, table in tables.items():
        writer.append(name, table)
    keeper = Retention(
        writer, RetentionPolicy(max_age_s=1.0), checkpoint_fold, clock=simulated_clock
    )
    for hour in range(3):
        simulated_clock.now = T0_WALL + hour * HOUR_NS
        writer.append("memory", hour_of_events(hour, stacks))
        writer.rotate_due(now=float("inf"))
    simulated_clock.now += HOUR_NS
    assert len(keeper.run_once()) == 2
    writer.close()
    checkpoint = tmp_path / "events" / "_state" / "state.json"
    checkpoint.write_text("{}")  # lost
    run_all(tmp_path, tmp_path / "reports", only=["memory"])
    meta = json.loads((tmp_path / "reports" / "snapshot_memory_analysis.json").read_text())[
        "metadata"
    ]
    assert any("retired by retention" in p for p in meta["log_problems"])
    assert checkpoint.read_text() == "{}"  # not replaced by a fold of what is left
    # nor by a follower's
    from memscope.analyzers.common import AnalyzerOptions
    from memscope.analyzers.follow import Follower

    follower = Follower(tmp_path, AnalyzerOptions(out_dir=tmp_path / "followed"), only=["memory"])
    assert follower.step() is not None
    follower.save()
    assert checkpoint.read_text() == "{}"
    meta = json.loads((tmp_path / "followed" / "snapshot_memory_analysis.json").read_text())[
        "metadata"
    ]
    assert any("retired by retention" in p for p in meta["log_problems"])


def test_a_checkpoint_reports_cannot_use_lets_no_segment_go(tmp_path, simulated_clock):
    from memscope.analyzers.fold import FoldParams
    from memscope.analyzers.state import open_state

    tables, stacks = small_tables()
    writer = LogWriter(tmp_path / "events", Settings(segment_max_bytes=64 * 1024))
    for name, table in tables.items():
        writer.append(name, table)
    for hour in range(3):
        simulated_clock.now = T0_WALL + hour * HOUR_NS
        writer.append("memory", hour_of_events(hour, stacks))
        writer.rotate_due(now=float("inf"))
    simulated_clock.now += HOUR_NS
    other = FoldParams(temporary_ns=5)
    open_state(open_log(tmp_path / "events"), other)  # saved, with other parameters

    def fold_elsewhere(path):  # the reports' parameters, but this checkpoint is not theirs
        return FoldParams().as_dict()

    keeper = Retention(
        writer, RetentionPolicy(max_age_s=1.0), fold_elsewhere, clock=simulated_clock
    )
    assert keeper.run_once() == []
    keeper.fold = lambda path: other.as_dict()  # had the reports used those, two could go
    assert len(keeper.run_once()) == 2
    writer.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MEMSCOPE_LOG_RETENTION_AGE": "a week"}, "log_retention_age"),
        ({"MEMSCOPE_LOG_RETENTION_BYTES": "1000"}, "at least twice segment_max_bytes"),
        ({"MEMSCOPE_LOG_RETENTION_BYTES": "-1"}, "log_retention_bytes"),
    ],
)
def test_bad_retention_settings_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_retention_settings_load():
    settings = load_settings(
        {"MEMSCOPE_LOG_RETENTION_AGE": "36h", "MEMSCOPE_LOG_RETENTION_BYTES": str(10 * 2**30)}
    )
    policy = RetentionPolicy.from_settings(settings)
    assert policy.max_age_s == 36 * 3600 and policy.max_bytes == 10 * 2**30
    assert policy.headroom_bytes == settings.segment_max_bytes and policy.enabled
    assert not RetentionPolicy.from_settings(load_settings({})).enabled


@pytest.mark.timeout(120)
def test_a_broker_archives_then_retires_and_no_event_is_lost(tmp_path):
    """Integration: a real broker under retention, archiving to a fleet dataset."""
    import threading

    import pyarrow.dataset as ds

    from memscope.broker.server import Broker
    from memscope.producer.synthetic import run_producer
    from tests.broker_helpers import ipc_address, wait_for

    dataset = tmp_path / "shared" / "dataset"
    settings = Settings().replace(
        log_flush_interval_s=0.1,
        segment_max_bytes=128 * 1024,
        log_retention_bytes=1024 * 1024,
        log_retention_dataset=str(dataset),
    )
    broker = Broker(tmp_path / "events", ipc_address(tmp_path), settings, analysis=log_analysis())
    broker.retention.interval_s = 0.2
    assert not broker.retention.due()  # an empty log: no pass, no fold
    thread = threading.Thread(target=broker.run, daemon=True)
    thread.start()
    events = 600_000
    try:
        result = run_producer(broker.bind, events, chunk=20_000, timeout=60, rate=400_000)
        assert result["events"] == events
        assert wait_for(lambda: broker.retention.retired_total >= 3, 60)
    finally:
        broker.request_stop()
        thread.join(30)
    assert not thread.is_alive()
    log = open_log(tmp_path / "events")
    retired = log.manifest["retired"]
    kept = sum(1 for _ in log.segments("memory_chunks"))
    assert retired["segments"] >= 3 and kept >= 1
    log_rows = sum(b.num_rows for b in log.memory_batches())
    archived = ds.dataset(dataset / "memory", format="parquet", partitioning="hive").to_table()
    # every retired event is in the dataset; the dataset may also hold kept segments
    # archived before the bound called for them, never an event twice
    assert log_rows + retired["events"] == events
    assert archived.num_rows >= retired["events"]
    seq = archived.column("seq").to_numpy()
    assert len(np.unique(seq)) == archived.num_rows
    # compacting the trimmed log into the same dataset adds the segments kept: every event
    # of the run is there once
    assert main(["compact", str(tmp_path / "events"), "--dataset", str(dataset)]) == 0
    merged = ds.dataset(dataset / "memory", format="parquet", partitioning="hive").to_table()
    assert merged.num_rows == events
    assert len(np.unique(merged.column("seq").to_numpy())) == events
    from memscope.analyzers.state import open_state

    # the checkpoint plus the segments kept: every event, retired or not
    assert open_state(open_log(tmp_path / "events")).events == events
