"""LogWriter / open_log: rotation, cut-short and damaged segments, live reading, versions."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from memscope.config import Settings
from memscope.eventlog.log import LogError, LogWriter, open_log
from memscope.protocol.log_schema import MEMORY, TABLES


def _memory(start: int, n: int) -> pa.Table:
    return pa.table(
        {
            f.name: pa.array((np.arange(start, start + n) % 200).astype(f.type.to_pandas_dtype()))
            for f in MEMORY
        }
    ).cast(MEMORY)


def _write(tmp_path, batches: int = 10, rows: int = 1000, **settings) -> LogWriter:
    writer = LogWriter(tmp_path / "events", Settings().replace(**settings))
    for i in range(batches):
        writer.append("memory", _memory(i * rows, rows))
    return writer


def test_round_trip_and_empty_tables(tmp_path):
    writer = _write(tmp_path)
    writer.append(
        "frames",
        pa.table(
            {
                "pid": pa.array([1], pa.uint32()),
                "frame_id": pa.array([3], pa.uint32()),
                "function": ["f"],
                "filename": ["a.py"],
                "lineno": pa.array([7], pa.int32()),
            }
        ),
    )
    writer.close()
    log = open_log(tmp_path)  # the run directory works as well as events/
    assert log.problems == []
    assert log.dataset("memory").count_rows() == 10_000
    assert log.dataset("frames").to_table().column("function").to_pylist() == ["f"]
    threads = log.dataset("threads").to_table()
    assert threads.num_rows == 0 and threads.schema.names == TABLES["threads"].names
    assert log.manifest["writer"]["state"] == "closed"


def test_segments_rotate_by_size_and_by_age(tmp_path):
    writer = _write(tmp_path, batches=6, segment_max_bytes=20_000, log_compression="none")
    assert len(open_log(tmp_path / "events").segments("memory")) >= 3
    writer.append(
        "ingest", pa.table({n: [] for n in TABLES["ingest"].names}, schema=TABLES["ingest"])
    )
    rotated = writer.rotate_due(now=1e12)  # everything open is "old" by then
    assert "memory" in rotated or not writer.open_offsets()
    writer.close()
    log = open_log(tmp_path / "events")
    assert log.dataset("memory").count_rows() == 6000
    assert all(s.closed for s in log.segments("memory"))


def test_open_segments_of_a_live_writer_are_read_without_problems(tmp_path):
    writer = _write(tmp_path, batches=3)
    log = open_log(tmp_path)
    assert log.live and log.problems == []
    assert log.dataset("memory").count_rows() == 3000
    writer.append("memory", _memory(0, 5))
    assert open_log(tmp_path).dataset("memory").count_rows() == 3005
    writer.close()


def _segment_file(tmp_path):
    return next((tmp_path / "events" / "memory").glob("memory-*.arrow"))


def test_truncated_segment_opens_and_every_complete_batch_reads(tmp_path):
    writer = _write(tmp_path, batches=10)
    path = _segment_file(tmp_path)
    offsets = []  # file size after each batch, to cut in the middle of batch 8
    writer.close()
    data = path.read_bytes()
    # cut-short with no footer: drop the footer and half of the last batch
    writer2 = LogWriter(tmp_path / "other", Settings())
    for i in range(10):
        offsets.append(writer2.append("memory", _memory(i * 1000, 1000))[1])
    writer2.close()
    cut = (offsets[7] + offsets[8]) // 2
    path.write_bytes(data[:cut])
    log = open_log(tmp_path)
    assert log.dataset("memory").count_rows() == 8000
    table = log.dataset("memory").to_table()
    assert table.column("seq").to_pylist()[:3] == [0, 1, 2]
    assert len(log.problems) == 1
    assert path.name in log.problems[0] and "8 complete batches" in log.problems[0]


def test_garbage_segment_is_named_as_a_problem(tmp_path):
    _write(tmp_path, batches=2).close()
    bad = tmp_path / "events" / "memory" / "memory-000009.arrow"
    bad.write_bytes(os.urandom(200))
    log = open_log(tmp_path)
    assert log.dataset("memory").count_rows() == 2000
    assert any("memory-000009.arrow" in p for p in log.problems)


def test_unclean_stop_is_reported_then_recovered(tmp_path):
    writer = _write(tmp_path, batches=4)
    manifest = json.loads((tmp_path / "events" / "manifest.json").read_text())
    manifest["writer"]["pid"] = 2**22 + 12345  # a writer that no longer runs
    (tmp_path / "events" / "manifest.json").write_text(json.dumps(manifest))
    log = open_log(tmp_path)
    assert log.dataset("memory").count_rows() == 4000
    assert any("not closed" in p for p in log.problems)
    del writer  # abandoned like a crashed process
    again = LogWriter(tmp_path / "events", Settings())
    notes = again.recover()
    again.close()
    assert notes and "recovered 4 committed batches" in notes[0]
    log = open_log(tmp_path)
    assert log.problems == [] and log.dataset("memory").count_rows() == 4000


def test_other_versions_and_non_logs_are_refused(tmp_path):
    with pytest.raises(LogError, match="no manifest.json"):
        open_log(tmp_path)
    _write(tmp_path, batches=1).close()
    manifest_path = tmp_path / "events" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(LogError, match="version 99; this memscope reads versions 1, 2"):
        open_log(tmp_path)


def test_append_rejects_wrong_columns(tmp_path):
    writer = LogWriter(tmp_path / "events", Settings())
    with pytest.raises(ValueError, match="lacks column"):
        writer.append("memory", pa.table({"pid": pa.array([1], pa.uint32())}))
    with pytest.raises(ValueError, match="unknown table"):
        writer.append("nope", pa.table({"a": [1]}))
    writer.close()


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        writer = _write(tmp_path, batches=1)
        writer.manifest["writer"]["pid"] = child.pid  # as if another live process wrote it
        writer.flush(sync=False)
        with pytest.raises(LogError, match=f"being written by process {child.pid}"):
            LogWriter(tmp_path / "events", Settings())
    finally:
        child.kill()
        child.wait()
