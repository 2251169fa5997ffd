"""Per-batch checksums: damage stays in the batches it touched; never a traceback or a hang."""

from __future__ import annotations

import random
import time

import numpy as np
import pyarrow as pa
import pytest

from memscope.analyzers.log_builder import sample_log
from memscope.analyzers.state import LogCursor
from memscope.broker.decode import ChunkPart, chunk_batch, cols1_data
from memscope.config import Settings
from memscope.eventlog import integrity
from memscope.eventlog.log import LogWriter, open_log
from memscope.protocol.log_schema import TABLES
from memscope.protocol.wire import MEMORY_COLUMNS

PIECES = 3  # batches per table: each segment has several, so "before" and "after" exist


def _chunks(memory: pa.Table) -> pa.RecordBatch:
    columns = {name: memory.column(name).to_numpy() for name in MEMORY_COLUMNS}
    part = ChunkPart(1, 0, [1], [0], [memory.num_rows], ["cols1"], [cols1_data(columns)])
    return chunk_batch([part])


def _build(path) -> dict[str, list[list[dict]]]:
    """A small log with several batches in every table; the rows of each batch, per table."""
    tables = sample_log().tables()
    writer = LogWriter(path, Settings())
    written: dict[str, list[list[dict]]] = {}
    for name in TABLES:
        table = tables.get(name)
        if name == "memory_chunks":
            memory = tables["memory"]
            step = -(-memory.num_rows // PIECES)
            parts = [_chunks(memory.slice(i, step)) for i in range(0, memory.num_rows, step)]
        elif table is None or not table.num_rows:
            continue
        else:
            step = -(-table.num_rows // PIECES)
            parts = [table.slice(i, step) for i in range(0, table.num_rows, step)]
        for part in parts:
            writer.append(name, part)
        written[name] = [
            pa.Table.from_batches([p]).to_pylist()
            if isinstance(p, pa.RecordBatch)
            else p.to_pylist()
            for p in parts
        ]
    writer.close()
    return written


def _read(log_dir, table: str) -> tuple[list[dict], list[str]]:
    log = open_log(log_dir)
    rows = [r for b in log.table_batches(table) for r in b.to_pylist()]
    return rows, list(log.problems)


def test_every_table_has_checksummed_segments_and_reads_clean(tmp_path):
    written = _build(tmp_path / "events")
    log = open_log(tmp_path / "events")
    assert log.problems == []
    for table, batches in written.items():
        (segment,) = log.segments(table)
        records = integrity.read_records(segment.path)
        assert [r.rows for r in records][:-1] == [len(b) for b in batches]
        assert records[-1].rows == integrity.FOOTER_ROWS
        assert integrity.verify_all(segment.path, records)
        assert [r for b in log.table_batches(table) for r in b.to_pylist()] == [
            r for b in batches for r in b
        ]


def test_one_damaged_batch_is_named_and_its_neighbours_are_read(tmp_path):
    written = _build(tmp_path / "events")
    log = open_log(tmp_path / "events")
    (segment,) = log.segments("variables")
    middle = integrity.read_records(segment.path)[1]
    data = bytearray(segment.path.read_bytes())
    data[middle.offset + middle.length // 2] ^= 0x10
    segment.path.write_bytes(bytes(data))
    rows, problems = _read(tmp_path / "events", "variables")
    batches = written["variables"]
    assert rows == batches[0] + batches[2]
    assert len(problems) == 1 and "variables-000000.arrow: batch 1" in problems[0]
    assert "checksum mismatch" in problems[0]
    # the analysis state reads through the same check
    cursor = LogCursor()
    got = [
        r
        for b in cursor.new_batches(open_log(tmp_path / "events"), "variables")
        for r in b.to_pylist()
    ]
    assert got == rows and any("batch 1" in p for p in cursor.problems)


def test_bit_flip_fuzz_never_raises_and_reads_every_untouched_batch(tmp_path):
    """1,000 random single-byte flips over every table's segments, each undone after."""
    events = tmp_path / "events"
    written = _build(events)
    log = open_log(events)
    segments = [(table, s.path) for table in written for s in log.segments(table)]
    originals = {path: path.read_bytes() for _, path in segments}
    records = {path: integrity.read_records(path) for _, path in segments}
    rng = random.Random(1234)
    started = time.monotonic()
    damaged_cases = 0
    for case in range(1000):
        table, path = segments[case % len(segments)]
        data = bytearray(originals[path])
        where = rng.randrange(len(data))
        data[where] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(data))
        try:
            rows, problems = _read(events, table)
            cursor = LogCursor()
            cursor_rows = [
                r for b in cursor.new_batches(open_log(events), table) for r in b.to_pylist()
            ]
        finally:
            path.write_bytes(originals[path])
        hit = [
            i
            for i, r in enumerate(records[path])
            if r.rows != integrity.FOOTER_ROWS and r.offset <= where < r.offset + r.length
        ]
        expected = [r for i, b in enumerate(written[table]) if i not in hit for r in b]
        assert rows == expected, (case, table, where, problems)
        assert cursor_rows == expected, (case, table, where, cursor.problems)
        if hit:
            damaged_cases += 1
            assert any(f"batch {hit[0]}" in p for p in problems), (case, problems)
        assert time.monotonic() - started < 120, "the fuzz is far too slow: a hang?"
    assert damaged_cases > 500  # most flips land in a batch, not in the footer


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_memory_chunks_decode_around_a_damaged_batch(tmp_path, compression):
    settings = Settings().replace(log_chunk_compression=compression)
    writer = LogWriter(tmp_path / "events", settings)
    columns = {name: np.arange(100, dtype=np.dtype(code)) for name, code in MEMORY_COLUMNS.items()}
    for seq in range(3):
        part = ChunkPart(1, seq, [1], [0], [100], ["cols1"], [cols1_data(columns)])
        writer.append("memory_chunks", chunk_batch([part]))
    writer.close()
    (segment,) = open_log(tmp_path / "events").segments("memory_chunks")
    first = integrity.read_records(segment.path)[0]
    data = bytearray(segment.path.read_bytes())
    data[first.offset + first.length - 20] ^= 0xFF
    segment.path.write_bytes(bytes(data))
    log = open_log(tmp_path / "events")
    assert sum(b.num_rows for b in log.memory_batches()) == 200
    assert log.memory_events() == 200
    assert any("batch 0" in p for p in log.problems)


def test_damaged_checksum_files_never_raise_and_name_what_they_cost(tmp_path):
    """200 random byte flips in the checksum files: each costs at most its batch, named."""
    events = tmp_path / "events"
    written = _build(events)
    log = open_log(events)
    sums = [
        (table, integrity.checksum_path(s.path)) for table in written for s in log.segments(table)
    ]
    rng = random.Random(99)
    for case in range(200):
        table, path = sums[case % len(sums)]
        original = path.read_bytes()
        data = bytearray(original)
        data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(data))
        try:
            rows, problems = _read(events, table)
        finally:
            path.write_bytes(original)
        everything = [r for b in written[table] for r in b]
        if rows != everything:  # a batch whose record was hit is skipped, and said so
            assert len(everything) - len(rows) <= max(len(b) for b in written[table])
            assert any("checksum record is damaged" in p for p in problems), problems


def test_an_ingest_segment_of_the_older_schema_reads_with_null_new_columns(tmp_path):
    """Logs written before ``rejected_rows``, ``refused`` and ``problem`` still read."""
    import pyarrow.ipc as ipc

    old = pa.schema(
        [f for f in TABLES["ingest"] if f.name not in ("rejected_rows", "refused", "problem")]
    )
    writer = LogWriter(tmp_path / "events", Settings())
    writer.close()
    (tmp_path / "events" / "ingest").mkdir()
    path = tmp_path / "events" / "ingest" / "ingest-000000.arrow"
    row = {
        "ts_ns": [1],
        "producer": ["p"],
        "pid": [2],
        "batches": [3],
        "events": [4],
        "rows": [4],
        "gaps": [0],
        "duplicates": [0],
        "rejected": [1],
    }
    with ipc.new_file(str(path), old) as out:  # no checksum file: an older log's segment
        out.write_batch(pa.record_batch(row, schema=old))
    log = open_log(tmp_path / "events")
    (got,) = [r for b in log.table_batches("ingest") for r in b.to_pylist()]
    assert got["rejected"] == 1 and got["refused"] is None and got["problem"] is None
    assert log.table("ingest").column("rejected_rows").to_pylist() == [None]
    cut = path.read_bytes()[:-40]  # and cut short (read as a stream, conformed)
    path.write_bytes(cut)
    log = open_log(tmp_path / "events")
    assert log.table("ingest").num_rows == 1 and log.problems
