"""Memory events stored as the producer encoded them (the memory_chunks table) and read back."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memscope.analyzers import run_all
from memscope.analyzers.common import AnalyzerOptions
from memscope.analyzers.follow import Follower
from memscope.analyzers.log_builder import sample_log, write_log
from memscope.analyzers.runner import analyze_tables
from memscope.analyzers.views import connect, materialize
from memscope.broker import start_embedded
from memscope.broker.decode import cols1_data
from memscope.broker.server import Broker
from memscope.commands.compact import compact
from memscope.commands.stats import collect
from memscope.config import Settings
from memscope.eventlog.chunks import decode_chunk_batches, encode_memory_table
from memscope.eventlog.log import LogReader, LogWriter, open_log
from memscope.producer.synthetic import memory_chunk, run_producer
from memscope.protocol import _rec1
from memscope.protocol.log_schema import MEMORY, MEMORY_CHUNKS
from memscope.protocol.records import (
    decode_chunk,
    decode_rec1_py,
    encode_cols1,
    encode_rec1,
    validate_chunk,
)
from memscope.protocol.wire import (
    DOMAIN_MEM,
    KIND_ALLOC,
    KIND_FREE,
    MEMORY_COLUMNS,
    WireError,
    encode_batch,
)
from tests.broker_helpers import ipc_address

_ORDER = list(MEMORY_COLUMNS)


def _outcome(fn, data: bytes, n: int) -> str:
    try:
        fn(data, n)
    except WireError as exc:
        return f"rejected: {exc}"
    return "accepted"


def _mixed_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Every kind (reallocs, callocs, frees with and without a stack), random values."""
    kind = rng.integers(0, 4, n).astype(np.uint8)
    size = rng.integers(0, 1 << 40, n).astype(np.uint64)
    size[kind == 3] = 0
    old = rng.integers(0, 1 << 63, n, dtype=np.uint64)
    old[kind != 2] = 0
    return {
        "ts_ns": rng.integers(-(1 << 62), 1 << 62, n, dtype=np.int64),
        "kind": kind,
        "domain": rng.integers(0, 6, n).astype(np.uint8),
        "address": rng.integers(0, 1 << 63, n, dtype=np.uint64) * np.uint64(2),
        "old_address": old,
        "size": size,
        "stack_id": rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
        * (rng.random(n) < 0.7),
    }


@pytest.mark.parametrize("entropy", ["real", "high", "mixed"])
def test_encode_rec1_round_trips_exactly(entropy):
    if entropy == "mixed":
        cols = _mixed_columns(np.random.default_rng(3), 5000)
    else:
        cols = memory_chunk(0, 1, 2, 5000, entropy=entropy)
    chunk = encode_rec1(9, cols)
    assert chunk["enc"] == "rec1" and chunk["n"] == 5000 and chunk["tid"] == 9
    for decoded in (decode_chunk(chunk), decode_rec1_py(chunk["data"], 5000)):
        for name in _ORDER:
            assert np.array_equal(decoded[name], np.asarray(cols[name], MEMORY_COLUMNS[name]))


def test_encode_rec1_refuses_rows_it_cannot_hold():
    cols = memory_chunk(0, 0, 0, 10)
    bad = dict(cols, size=np.where(cols["kind"] == 3, 1, cols["size"]).astype(np.uint64))
    with pytest.raises(ValueError, match="free with a size"):
        encode_rec1(1, bad)
    with pytest.raises(ValueError, match="out of range"):
        encode_rec1(1, dict(cols, domain=np.full(10, 6, np.uint8)))


def _mutations(data: bytes, rng: random.Random) -> list[bytes]:
    body = bytearray(data)
    out = [data[:cut] for cut in (0, 10, 55, 56, len(data) - 1, rng.randrange(57, len(data)))]
    out += [data + b"\x00", data + rng.randbytes(5)]
    for _ in range(60):  # random byte changes anywhere (header included)
        flipped = bytearray(body)
        for _ in range(rng.randrange(1, 4)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        out.append(bytes(flipped))
    for _ in range(20):  # valid header, random records
        out.append(bytes(body[:56]) + rng.randbytes(rng.randrange(0, 400)))
    return out


def test_the_scan_accepts_a_chunk_iff_the_decoder_does():
    rng = random.Random(11)
    accepted = rejected = 0
    for seed in range(12):
        cols = _mixed_columns(np.random.default_rng(seed), rng.randrange(1, 120))
        data = encode_rec1(1, cols)["data"]
        n = len(cols["kind"])
        for candidate in [data, *_mutations(data, rng)]:
            for count in (n, n + 1, max(n - 1, 0)):
                scan = _outcome(_rec1.validate_rec1, candidate, count)
                assert scan == _outcome(_rec1.decode_rec1, candidate, count)
                assert scan == _outcome(decode_rec1_py, candidate, count)
                accepted += scan == "accepted"
                rejected += scan != "accepted"
    assert accepted >= 12 and rejected > 1000


def test_validate_chunk_checks_the_chunk_fields():
    chunk = encode_rec1(1, memory_chunk(0, 0, 0, 100))
    validate_chunk(chunk)
    for bad in (
        {"n": 101},
        {"n": -1},
        {"n": 1 << 33},
        {"data": "text"},
        {"enc": "zip"},
        {"data": chunk["data"][:-1]},
        {"data": None},
    ):
        with pytest.raises(WireError):
            validate_chunk({**chunk, **bad})
        with pytest.raises(WireError):  # the decoder refuses the same chunk
            decode_chunk({**chunk, **bad})


def _frame(message: bytes):
    class Frame:
        buffer = memoryview(message)

    return Frame()


def _mixed_envelope_log(path: Path, log_memory: str) -> Path:
    """One producer whose envelopes mix rec1 and cols1 chunks of two threads."""
    broker = Broker(
        path,
        ipc_address(path.parent, f"{path.name}.sock"),
        Settings().replace(log_memory=log_memory),
    )
    for seq in range(3):
        mem = [
            encode_rec1(11, memory_chunk(0, 0, 3 * seq, 700)),
            encode_cols1(12, memory_chunk(0, 1, 3 * seq + 1, 300)),
            encode_rec1(12, memory_chunk(0, 2, 3 * seq + 2, 500, entropy="high")),
        ]
        broker._on_message([_frame(encode_batch("mix:1:1", 777, seq, mem, {}))])
    broker._on_message([_frame(b"not msgpack")])
    broker.commit()
    broker.close()
    return path


def _expected_mixed() -> pa.Table:
    parts = []
    for seq in range(3):
        index = 0
        for tid, (producer, n, entropy) in zip(
            (11, 12, 12), ((0, 700, "real"), (1, 300, "real"), (2, 500, "high")), strict=True
        ):
            cols = memory_chunk(0, producer, 3 * seq + producer, n, entropy=entropy)
            ids = {
                "pid": np.full(n, 777, np.uint32),
                "tid": np.full(n, tid, np.uint64),
                "seq": (np.uint64(seq << 24) | np.arange(index, index + n, dtype=np.uint64)),
            }
            parts.append(pa.table({**ids, **cols}).select(MEMORY.names).cast(MEMORY))
            index += n
    return pa.concat_tables(parts)


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("pid", "ascending"), ("seq", "ascending")])


def test_broker_keeps_every_chunk_and_both_settings_read_the_same_events_in_order(tmp_path):
    expected = _expected_mixed()  # arrival order: rec1, cols1, rec1 chunks per envelope
    chunks_log = open_log(_mixed_envelope_log(tmp_path / "chunks", "chunks"))
    columns_log = open_log(_mixed_envelope_log(tmp_path / "columns", "columns"))
    # Default: every chunk as one memory_chunks row (3 per envelope), rec1 and cols1 alike.
    stored = chunks_log.table("memory_chunks")
    assert stored.num_rows == 9 and chunks_log.chunk_events() == 4500
    assert stored.column("encoding").to_pylist() == ["rec1", "cols1", "rec1"] * 3
    assert stored.column("first_index").to_pylist() == [0, 700, 1000] * 3
    assert stored.column("data").to_pylist()[1] == cols1_data(memory_chunk(0, 1, 1, 300))
    assert chunks_log.stored_dataset("memory").count_rows() == 0
    # Old behaviour: every event columnar, no chunk rows.
    assert columns_log.chunk_events() == 0
    assert columns_log.stored_dataset("memory").count_rows() == 4500
    for log in (chunks_log, columns_log):
        assert log.memory_events() == 4500
        read = pa.Table.from_batches(list(log.memory_batches(target=600)), schema=MEMORY)
        assert read.equals(expected)  # the same events in the same ORDER, not just sorted
        assert _sorted(log.dataset("memory").to_table()).equals(_sorted(expected))


def _aggregated_log(path: Path, log_memory: str) -> Path:
    """The aggregated tracer: A promoted (cols1), A freed (rec1), B at A's address promoted."""
    broker = Broker(
        path,
        ipc_address(path.parent, f"{path.name}.sock"),
        Settings().replace(log_memory=log_memory),
    )
    address = 0x7F0000001000

    def columns(ts: int, kind: int, size: int) -> dict[str, np.ndarray]:
        return {
            "ts_ns": np.array([ts], np.int64),
            "kind": np.array([kind], np.uint8),
            "domain": np.array([DOMAIN_MEM], np.uint8),
            "address": np.array([address], np.uint64),
            "old_address": np.zeros(1, np.uint64),
            "size": np.array([size], np.uint64),
            "stack_id": np.zeros(1, np.uint32),
        }

    envelopes = [
        [encode_cols1(1, columns(100, KIND_ALLOC, 64))],
        [encode_rec1(1, columns(200, KIND_FREE, 0))],
        [encode_cols1(1, columns(300, KIND_ALLOC, 32))],
    ]
    for seq, mem in enumerate(envelopes):
        broker._on_message([_frame(encode_batch("agg:1:1", 7, seq, mem, {}))])
    broker.commit()
    broker.close()
    return path


@pytest.mark.parametrize("log_memory", ["chunks", "columns"])
def test_aggregated_mode_frees_match_promoted_allocations(tmp_path, log_memory):
    con = connect(_aggregated_log(tmp_path / "events", log_memory))
    materialize(con, chunk_rows=2)
    rows = con.execute(
        "SELECT ts_ns, size, free_ts_ns, end_kind FROM allocations ORDER BY ts_ns"
    ).fetchall()
    assert rows[0] == (100, 64, 200, "free")
    assert rows[1][:2] == (300, 32) and rows[1][2] is None


def test_a_stored_cols1_chunk_of_the_wrong_length_is_skipped_and_reported():
    cols = memory_chunk(0, 1, 1, 10)
    good = cols1_data(cols)
    table = pa.table(
        {
            "pid": pa.array([1, 1], pa.uint32()),
            "tid": pa.array([5, 5], pa.uint64()),
            "batch_seq": pa.array([0, 1], pa.uint64()),
            "first_index": pa.array([0, 0], pa.uint32()),
            "n": pa.array([10, 10], pa.uint32()),
            "encoding": ["cols1", "cols1"],
            "data": pa.array([good, good[:-1]]),
        },
        schema=MEMORY_CHUNKS,
    )
    problems: list[str] = []
    read = pa.Table.from_batches(
        list(decode_chunk_batches(table.to_batches(), on_problem=problems.append))
    )
    assert read.num_rows == 10 and len(problems) == 1 and "cols1" in problems[0]
    for name in _ORDER:
        assert np.array_equal(read.column(name).to_numpy(), cols[name])


def test_chunk_events_through_a_real_broker_exactly_once(tmp_path):
    log_dir = tmp_path / "events"
    broker = start_embedded(log_dir, bind=ipc_address(tmp_path))
    try:
        result = run_producer(broker.address, 50_000, index=3, chunk=7_000, timeout=60)
        client = broker.client()
        [row] = client.ingest()
        summary = client.flush()
        client.close()
    finally:
        assert broker.stop() == 0
    assert row["events"] == result["events"] == 50_000
    assert summary["rows"]["memory"] == 50_000  # every memory event, stored as chunks
    log = open_log(log_dir)
    assert log.problems == []
    assert log.chunk_events() == 50_000 and log.stored_dataset("memory").count_rows() == 0
    batches = list(log.memory_batches(target=16_384))
    assert all(b.schema.equals(MEMORY) for b in batches)
    assert all(b.num_rows >= 16_384 for b in batches[:-1])
    memory = pa.Table.from_batches(batches)
    memory = memory.take(pa.array(np.argsort(memory.column("seq").to_numpy())))
    parts = [memory_chunk(0, 3, i, n) for i, n in enumerate([7_000] * 7 + [1_000])]
    for name in _ORDER:
        want = np.concatenate([p[name] for p in parts]).astype(MEMORY_COLUMNS[name])
        got = memory.column(name).to_numpy()
        if name == "ts_ns":  # the producer adds its start time
            got, want = got - got[0], want - want[0]
        assert np.array_equal(got, want), name
    seq = memory.column("seq").to_numpy()
    assert len(np.unique(seq)) == 50_000
    assert sorted(np.unique(seq >> np.uint64(24)).tolist()) == list(range(result["last_seq"] + 1))


def _chunk_tables() -> dict[str, pa.Table]:
    tables = sample_log().tables()
    tables["memory_chunks"] = encode_memory_table(tables.pop("memory"))
    return tables


def _reports(out: Path) -> dict[str, object]:
    reports = {}
    for path in sorted(out.glob("*.json")):
        report = json.loads(path.read_text())
        for volatile in ("source_log_id", "generated_at"):
            report.pop(volatile, None)
            report.get("metadata", {}).pop(volatile, None)
        reports[path.name] = report
    return reports


def test_views_analyzers_and_compact_see_chunk_logs_like_columnar_ones(tmp_path):
    columnar = write_log(sample_log().tables(), tmp_path / "a" / "events")
    chunked = write_log(_chunk_tables(), tmp_path / "b" / "events")
    assert open_log(chunked).stored_dataset("memory").count_rows() == 0
    queries = [
        "SELECT * FROM events ORDER BY pid, seq",
        # a self-join: raw_memory must be scannable more than once
        "SELECT count(*) FROM raw_memory a JOIN raw_memory b ON a.pid = b.pid "
        "AND a.address = b.address AND a.seq < b.seq",
    ]
    for sql in queries:
        results = []
        for log in (columnar, chunked):
            con = connect(log)
            results.append(con.execute(sql).fetchall())
            con.close()
        assert results[0] == results[1] and results[0]
    # In memory, from the raw tables (raw_memory whole), as the baseline.
    analyze_tables(sample_log().tables(), AnalyzerOptions(out_dir=tmp_path / "base"))
    baseline = _reports(tmp_path / "base")
    assert len(baseline) == 6
    for log, name, jobs in ((columnar, "a", 1), (chunked, "b1", 1), (chunked, "b2", 2)):
        out = tmp_path / f"out-{name}"
        assert len(run_all(log, out, jobs=jobs)) == 6
        assert _reports(out) == baseline, name
    assert collect(str(chunked)) == collect(str(columnar))  # memscope stats
    info = compact(str(chunked), tmp_path / "parquet")
    assert "memory_chunks" not in info["tables"]
    memory = pq.read_table(tmp_path / "parquet" / "memory.parquet")
    assert _sorted(memory).equals(_sorted(sample_log().tables()["memory"]))


def test_follow_decodes_only_new_chunk_rows(tmp_path):
    tables = _chunk_tables()
    chunks = tables["memory_chunks"]
    events = tmp_path / "run" / "events"
    first = {**tables, "memory_chunks": chunks.slice(0, 2)}
    write_log(first, events)
    follower = Follower(events, AnalyzerOptions(out_dir=tmp_path / "live"))
    assert follower.step() is not None
    n_first = int(np.sum(chunks.column("n").to_numpy()[:2]))
    assert follower.events == n_first
    # The analyzers read the analysis state only: no copy of the raw events is kept.
    assert follower.con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert not follower.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_decoded_memory'"
    ).fetchone()[0]
    writer = LogWriter(events)
    writer.append("memory_chunks", chunks.slice(2))
    writer.close()
    assert follower.step() is not None
    total = int(np.sum(chunks.column("n").to_numpy()))
    assert follower.events == total
    assert follower.con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert follower.con.execute("SELECT sum(allocations) FROM sites").fetchone()[0] > 0
    assert follower.step() is None


def test_old_version_1_logs_read_as_before(tmp_path):
    events = write_log(sample_log().tables(), tmp_path / "events")
    manifest = json.loads((events / "manifest.json").read_text())
    manifest["version"] = 1
    (events / "manifest.json").write_text(json.dumps(manifest))
    log = open_log(events)
    expected = sample_log().tables()["memory"]
    assert pa.Table.from_batches(list(log.memory_batches()), schema=MEMORY).equals(expected)
    assert log.chunk_events() == 0 and log.memory_events() == expected.num_rows
    con = connect(events)
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == expected.num_rows
    con.close()
    LogWriter(events).close()  # continuing an old log upgrades it: it may now hold chunks
    assert json.loads((events / "manifest.json").read_text())["version"] == 2


def test_a_truncated_chunk_segment_reads_to_its_last_complete_batch(tmp_path):
    chunks = _chunk_tables()["memory_chunks"]
    writer = LogWriter(tmp_path / "events", Settings().replace(log_chunk_compression="zstd"))
    ends = [writer.append("memory_chunks", chunks.slice(i, 1))[1] for i in range(chunks.num_rows)]
    writer.flush()
    segment = next((tmp_path / "events" / "memory_chunks").glob("*.arrow"))
    copy = tmp_path / "copy" / "events"
    shutil.copytree(tmp_path / "events", copy)
    writer.close()
    crashed = copy / "memory_chunks" / segment.name
    with open(crashed, "r+b") as fh:  # cut in the middle of the third batch
        fh.truncate(ends[1] + (ends[2] - ends[1]) // 2)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["writer"]["pid"] = 999_999_999  # the writer is gone
    (copy / "manifest.json").write_text(json.dumps(manifest))
    log = open_log(copy)
    assert any("memory_chunks" in p and "2 complete batches" in p for p in log.problems)
    read = pa.Table.from_batches(list(log.memory_batches()), schema=MEMORY)
    counts = chunks.column("n").to_pylist()
    assert read.num_rows == counts[0] + counts[1] == log.memory_events()
    expected = pa.Table.from_batches(list(decode_chunk_batches(chunks.slice(0, 2).to_batches())))
    assert read.equals(expected)


def test_a_damaged_chunk_on_disk_is_skipped_and_reported(tmp_path):
    chunks = _chunk_tables()["memory_chunks"]
    data = chunks.column("data").to_pylist()
    data[1] = data[1][:-1]
    damaged = chunks.set_column(
        chunks.schema.get_field_index("data"), "data", pa.array(data, pa.binary())
    )
    problems: list[str] = []
    read = pa.Table.from_batches(
        list(decode_chunk_batches(damaged.to_batches(), on_problem=problems.append))
    )
    counts = chunks.column("n").to_pylist()
    assert read.num_rows == sum(counts) - counts[1]
    assert len(problems) == 1 and "does not decode" in problems[0]


def _damaged_chunk_log(path: Path) -> Path:
    """The sample log with its memory events as chunks, the second cut short by one byte."""
    tables = sample_log().tables()
    chunks = encode_memory_table(tables.pop("memory"))
    data = chunks.column("data").to_pylist()
    data[1] = data[1][:-1]
    tables["memory_chunks"] = chunks.set_column(
        chunks.schema.get_field_index("data"), "data", pa.array(data, pa.binary())
    )
    return write_log(tables, path)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_chunk_that_does_not_decode_reaches_every_report_and_stats(tmp_path, jobs):
    log = _damaged_chunk_log(tmp_path / "events")
    paths = run_all(log, tmp_path / "out", jobs=jobs)
    assert len(paths) == 6
    for path in paths:
        problems = json.loads(path.read_text())["metadata"].get("log_problems", [])
        assert len(problems) == 1 and "does not decode" in problems[0], path.name
    stats = collect(str(log))
    assert len(stats["log_problems"]) == 1 and "does not decode" in stats["log_problems"][0]


def test_analyze_command_reports_a_chunk_that_does_not_decode(tmp_path, capsys):
    from memscope.commands.main import main

    log = _damaged_chunk_log(tmp_path / "events")
    assert main(["analyze", str(log), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    assert "does not decode" in capsys.readouterr().err
    assert main(["stats", str(log)]) == 1  # named, with status 1 (docs/robustness.md)
    assert "damaged log:" in capsys.readouterr().out


_OUT_OF_RANGE_ROW = """
import sys
import numpy as np
from memscope.producer import _tracer
from memscope.protocol import _rec1
from memscope.protocol.records import encode_rec1
from memscope.producer.synthetic import memory_chunk
chunk = encode_rec1(1, memory_chunk(0, 0, 0, 10))
outs = [np.empty(10, d) for d in ("<i8", "u1", "u1", "<u8", "<u8", "<u8", "<u4")]
try:
    _rec1.decode_rec1_into(chunk["data"], 10, *outs, int(sys.argv[1]))
except ValueError as exc:
    print("ValueError", exc)
"""


@pytest.mark.parametrize("row", [2**63 - 5, 2**62, 2**61 + 1, 11])
def test_decode_rec1_into_refuses_rows_beyond_its_columns(row):
    # Run apart: before the overflow checks these rows made the decoder write out of bounds.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _OUT_OF_RANGE_ROW, str(row)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ValueError output column too short"


def test_rec1_columns_must_be_aligned():
    chunk = encode_rec1(1, memory_chunk(0, 0, 0, 10))
    outs = [np.empty(10, d) for d in ("<i8", "u1", "u1", "<u8", "<u8", "<u8", "<u4")]
    outs[3] = np.frombuffer(bytearray(81), "<u8", offset=1)  # writable, not 8-byte aligned
    with pytest.raises(ValueError, match="not aligned"):
        _rec1.decode_rec1_into(chunk["data"], 10, *outs, 0)
    cols = [np.ascontiguousarray(v) for v in memory_chunk(0, 0, 0, 10).values()]
    cols[0] = np.frombuffer(bytearray(81), "<i8", offset=1)
    with pytest.raises(ValueError, match="not aligned"):
        _rec1.encode_rec1(*cols)
    assert list(memory_chunk(0, 0, 0, 1)) == _ORDER


def test_a_chunk_whose_n_does_not_fit_its_bytes_is_skipped_before_allocating():
    import tracemalloc

    good = encode_rec1(5, memory_chunk(0, 0, 0, 100))
    cols = cols1_data(memory_chunk(0, 1, 1, 100))
    rows = [
        ("rec1", good["data"], 100),
        ("rec1", good["data"], 5_000_000),  # n damaged
        ("cols1", cols, 100),
        ("cols1", cols, 4_000_000),
        ("zip9", b"x" * 64, 1),
        ("rec1", b"short", 1),
    ]
    table = pa.table(
        {
            "pid": pa.array([1] * 6, pa.uint32()),
            "tid": pa.array([5] * 6, pa.uint64()),
            "batch_seq": pa.array(range(6), pa.uint64()),
            "first_index": pa.array([0] * 6, pa.uint32()),
            "n": pa.array([r[2] for r in rows], pa.uint32()),
            "encoding": [r[0] for r in rows],
            "data": pa.array([r[1] for r in rows]),
        },
        schema=MEMORY_CHUNKS,
    )
    problems: list[str] = []
    tracemalloc.start()
    try:
        read = pa.Table.from_batches(
            list(decode_chunk_batches(table.to_batches(), on_problem=problems.append))
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # the damaged counts would have needed ~340 MB of columns
    assert read.num_rows == 200
    assert read.column("seq").to_pylist()[100] == 2 << 24
    assert len(problems) == 4 and all("does not decode" in p for p in problems)
    assert "claims 5000000 events in" in problems[0] and "zip9" in problems[2]


def test_memory_batches_are_capped_in_events_even_for_one_big_chunk(tmp_path):
    from memscope.eventlog.chunks import MAX_EVENTS

    big = memory_chunk(0, 0, 0, 600_000)
    ids = {
        "pid": np.full(600_000, 3, np.uint32),
        "tid": np.full(600_000, 4, np.uint64),
        "seq": np.arange(600_000, dtype=np.uint64),
    }
    columnar = pa.table({**ids, **big}).select(MEMORY.names).cast(MEMORY)
    chunked = (
        pa.table({**ids, "seq": ids["seq"] + np.uint64(1 << 24), **big})
        .select(MEMORY.names)
        .cast(MEMORY)
    )
    log = open_log(
        write_log(
            {"memory": columnar, "memory_chunks": encode_memory_table(chunked)}, tmp_path / "events"
        )
    )
    assert log.table("memory_chunks").num_rows == 1
    batches = list(log.memory_batches())
    assert max(b.num_rows for b in batches) == MAX_EVENTS == 262_144
    assert len(batches) == 6  # 600K columnar rows in 3 slices, the chunk's 600K in 3
    assert pa.Table.from_batches(batches).equals(pa.concat_tables([columnar, chunked]))


def _count_decodes(monkeypatch) -> list[int]:
    """The number of events of each batch decoded from memory_chunks from now on."""
    calls: list[int] = []
    original = LogReader._chunk_memory_batches

    def counting(self, target=None):
        for batch in original(self, target):
            calls.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(LogReader, "_chunk_memory_batches", counting)
    return calls


def test_connect_matched_decodes_every_chunk_once(tmp_path, monkeypatch):
    chunked = write_log(_chunk_tables(), tmp_path / "b" / "events")
    columnar = write_log(sample_log().tables(), tmp_path / "a" / "events")
    calls = _count_decodes(monkeypatch)
    results = []
    for log, raw in ((chunked, True), (chunked, False), (columnar, True)):
        calls.clear()
        con = connect(log, raw_memory=raw, matched=True)
        assert sum(calls) == (open_log(chunked).memory_events() if log == chunked else 0)
        results.append(
            (
                con.execute("SELECT count(*) FROM events").fetchone()[0],
                con.execute("SELECT * FROM allocations ORDER BY pid, seq").fetchall(),
            )
        )
        con.close()
    total = open_log(chunked).memory_events()
    assert results[0] == results[2] and results[0][0] == total and results[0][1]
    assert results[1] == (0, results[0][1])  # raw_memory=False: block state only


def test_query_of_block_views_decodes_the_log_once(tmp_path, monkeypatch):
    from memscope.commands.query import run_query

    chunked = write_log(_chunk_tables(), tmp_path / "events")
    calls = _count_decodes(monkeypatch)
    out = tmp_path / "out.csv"
    assert run_query(str(chunked), "SELECT count(*) AS n FROM allocations", "csv", str(out)) == 1
    assert sum(calls) == open_log(chunked).memory_events()  # once, not twice
    assert int(out.read_text().split()[1]) > 0


def test_query_decodes_chunks_only_for_views_that_read_memory_events(tmp_path, monkeypatch):
    from memscope.commands.query import run_query

    chunked = write_log(_chunk_tables(), tmp_path / "b" / "events")
    columnar = write_log(sample_log().tables(), tmp_path / "a" / "events")
    total = open_log(chunked).memory_events()
    calls = _count_decodes(monkeypatch)
    for sql, decoded in (
        ("SELECT pid FROM processes ORDER BY pid", 0),
        ("SELECT count(*) FROM events", total),
        (
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM frees), "
            "(SELECT count(*) FROM allocations)",
            total,
        ),
    ):
        answers = []
        for log in (chunked, columnar):
            calls.clear()
            out = tmp_path / "out.csv"
            run_query(str(log), sql, "csv", str(out))
            assert sum(calls) == (decoded if log == chunked else 0), sql
            answers.append(out.read_text())
        assert answers[0] == answers[1], sql


def test_connections_spill_to_a_temporary_directory_removed_with_them(tmp_path):
    import gc
    import tempfile

    con = connect(write_log(_chunk_tables(), tmp_path / "events"))
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    assert spill.is_dir() and spill.is_relative_to(tempfile.gettempdir())
    con.close()
    del con
    gc.collect()
    assert not spill.exists()


def test_follow_keeps_reporting_a_chunk_that_did_not_decode_in_an_earlier_round(tmp_path):
    damaged = _damaged_chunk_log(tmp_path / "src" / "events")
    tables = {name: open_log(damaged).table(name) for name in ("processes", "threads")}
    chunks = open_log(damaged).table("memory_chunks")
    events = tmp_path / "run" / "events"
    write_log({**tables, "memory_chunks": chunks.slice(0, 3)}, events)
    follower = Follower(events, AnalyzerOptions(out_dir=tmp_path / "live"))
    for round_ in range(2):
        written = follower.step()
        assert written is not None
        for path in written:
            problems = json.loads(path.read_text())["metadata"].get("log_problems", [])
            assert len(problems) == 1 and "does not decode" in problems[0], (round_, path.name)
        writer = LogWriter(events)
        writer.append("memory_chunks", chunks.slice(3))
        writer.close()


def test_a_dense_rec1_chunk_of_two_byte_records_is_not_taken_for_damaged():
    n = 1000
    cols = {
        "ts_ns": np.full(n, 5, np.int64),
        "kind": np.full(n, 3, np.uint8),
        "domain": np.ones(n, np.uint8),
        "address": np.arange(n, dtype=np.uint64) * np.uint64(8) + np.uint64(4096),
        "old_address": np.zeros(n, np.uint64),
        "size": np.zeros(n, np.uint64),
        "stack_id": np.zeros(n, np.uint32),
    }
    plain = encode_rec1(5, cols)["data"]  # tag, tick delta 0, address delta: 3 bytes each
    assert plain[60:] == b"\x07\x00\x10" * (n - 1)
    # The tracer's form: the T bit (same tick as the previous record) and no tick varint.
    chunk = {"tid": 5, "n": n, "enc": "rec1", "data": plain[:60] + b"\x47\x10" * (n - 1)}
    assert len(chunk["data"]) - 56 < 3 * n
    assert np.array_equal(decode_chunk(chunk)["address"], cols["address"])
    table = pa.table(
        {
            "pid": pa.array([1], pa.uint32()),
            "tid": pa.array([5], pa.uint64()),
            "batch_seq": pa.array([0], pa.uint64()),
            "first_index": pa.array([0], pa.uint32()),
            "n": pa.array([n], pa.uint32()),
            "encoding": ["rec1"],
            "data": pa.array([chunk["data"]]),
        },
        schema=MEMORY_CHUNKS,
    )
    problems: list[str] = []
    read = pa.Table.from_batches(
        list(decode_chunk_batches(table.to_batches(), on_problem=problems.append))
    )
    assert problems == [] and read.num_rows == n
    assert np.array_equal(read.column("address").to_numpy(), cols["address"])
