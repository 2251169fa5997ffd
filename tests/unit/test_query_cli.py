"""`memscope query`, `memscope stats` and `memscope compact` over a log on disk."""

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from memscope.analyzers.log_builder import LogBuilder, sample_log, write_log
from memscope.commands.main import main

SQL = "SELECT pid, count(*) AS n, sum(size) AS bytes FROM allocations GROUP BY pid ORDER BY pid"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    write_log(sample_log().tables(), root / "run" / "events")
    return root / "run"


def _expected(run_dir):
    from memscope.analyzers.views import connect

    return connect(run_dir).execute(SQL).fetchall()


def test_table_format(run_dir, capsys):
    assert main(["query", str(run_dir), SQL]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["pid", "n", "bytes"]
    expected = _expected(run_dir)
    assert [tuple(int(v) for v in line.split()) for line in lines[2:-1]] == expected
    assert lines[-1] == f"({len(expected)} rows)"


def test_csv_format(run_dir, capsys):
    assert main(["query", str(run_dir / "events"), SQL, "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["pid", "n", "bytes"]
    assert [tuple(int(v) for v in r) for r in rows[1:]] == _expected(run_dir)


def test_json_format_to_a_file(run_dir, tmp_path):
    out = tmp_path / "r.json"
    assert main(["query", str(run_dir), SQL, "--format", "json", "--output", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["pid"], r["n"], r["bytes"]) for r in rows] == _expected(run_dir)


def test_json_of_nothing_is_an_empty_array(run_dir, capsys):
    assert main(["query", str(run_dir), "SELECT * FROM ffi WHERE false", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_parquet_format(run_dir, tmp_path):
    out = tmp_path / "r.parquet"
    assert main(["query", str(run_dir), SQL, "--format", "parquet", "-o", str(out)]) == 0
    table = pq.read_table(out)
    assert list(zip(*(table.column(i).to_pylist() for i in range(3)), strict=True)) == _expected(
        run_dir
    )


def test_parquet_needs_an_output(run_dir, capsys):
    assert main(["query", str(run_dir), SQL, "--format", "parquet"]) == 2
    assert "--output" in capsys.readouterr().err


def test_a_bad_query_is_a_clear_error(run_dir, capsys):
    assert main(["query", str(run_dir), "SELECT nope FROM allocations"]) == 2
    assert "query failed" in capsys.readouterr().err


def test_stats_prints_the_headline_numbers(run_dir, capsys):
    assert main(["stats", str(run_dir), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    from memscope.analyzers.memstats import process_stats
    from memscope.analyzers.runner import connect_analyzed

    assert stats["total"] == process_stats(connect_analyzed(run_dir))
    assert [p["pid"] for p in stats["processes"]] == [100, 101]
    assert main(["stats", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert "peak memory" in text and "app.py --worker" in text


def test_compact_copies_every_table_to_parquet(tmp_path, capsys):
    b = LogBuilder()
    b.alloc(1, 1, 0x10, 8)
    b.free(1, 2, 0x10)
    b.process(1, 0)
    write_log(b.tables(), tmp_path / "run" / "events")
    assert main(["compact", str(tmp_path / "run")]) == 0
    out = tmp_path / "run" / "parquet"
    assert pq.read_table(out / "memory.parquet").num_rows == 2
    assert pq.read_table(out / "processes.parquet").num_rows == 1
    info = json.loads((out / "compact.json").read_text())
    assert info["tables"]["memory"] == 2 and info["source_log_id"]


def test_stats_names_each_mode_and_labels_samples_and_measured_peaks(tmp_path, capsys):
    b = LogBuilder()
    b.process(1, 0, mode="aggregated", argv=("agg.py",))
    b.alloc(1, 10, 0x100, 1000)
    b.aggregate(1, 20, 0, alloc_count=3, alloc_bytes=6000)
    b.producer_stats(1, 30, events=1, current_bytes=1000, peak_bytes=7 * 1024 * 1024)
    b.process(2, 0, mode="sampled", sample_bytes=65536, argv=("sampled.py",))
    b.alloc(2, 10, 0x100, 65536)
    write_log(b.tables(), tmp_path / "run" / "events")
    assert main(["stats", str(tmp_path / "run"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    agg, sampled = stats["processes"]
    assert agg["mode"] == "aggregated" and agg["peak_memory"] == 7 * 1024 * 1024
    assert agg["peak_memory_source"] == "measured in process"
    assert sampled["mode"] == "sampled" and sampled["estimated"] is True
    assert sampled["samples"]["allocations"] == 1 and sampled["total_allocations"] == 2
    assert main(["stats", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "aggregated" in text and "sampled" in text
    assert "7.0 MiB (measured)" in text and "(measured in process)" in text
    assert "1 sampled allocations" in text and "~2" in text
    assert "7.0 MiB (measured in process; the highest single process" in text
