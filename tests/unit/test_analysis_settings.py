"""The ``analysis_memory_mb`` setting: validated, and DuckDB's memory limit on every path."""

import json

import duckdb
import pytest

from memscope.analyzers.common import AnalyzerOptions
from memscope.analyzers.log_builder import sample_log, write_log
from memscope.commands.main import main
from memscope.config import SettingsError, load_settings

LIMIT_SQL = "SELECT current_setting('memory_limit')"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("settings")
    write_log(sample_log().tables(), root / "run" / "events")
    return root / "run"


def _duckdb_shows(megabytes):
    """How DuckDB reports a memory limit of ``megabytes`` MB (it prints MiB)."""
    con = duckdb.connect()
    con.execute("SET memory_limit = ?", [f"{megabytes}MB"])
    return con.execute(LIMIT_SQL).fetchone()[0]


def test_the_default_and_an_override():
    assert load_settings({}).analysis_memory_mb == 1000
    assert load_settings({"MEMSCOPE_ANALYSIS_MEMORY_MB": "250"}).analysis_memory_mb == 250


@pytest.mark.parametrize(
    "value, message",
    [
        ("lots", "analysis_memory_mb must be a int of megabytes (e.g. 2000), not 'lots'"),
        ("2GB", "analysis_memory_mb must be a int of megabytes"),
        ("0", "analysis_memory_mb must be a positive integer, not 0"),
        ("-5", "analysis_memory_mb must be a positive integer"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_key(value, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings({"MEMSCOPE_ANALYSIS_MEMORY_MB": value})


@pytest.mark.parametrize("old", ["MEMSCOPE_DUCKDB_MEMORY", "MEMSCOPE_ANALYZE_MEMORY_MB"])
def test_the_old_variables_are_an_error_naming_the_new_one(old):
    with pytest.raises(
        SettingsError, match=f"{old} is no longer read: set MEMSCOPE_ANALYSIS_MEMORY_MB instead"
    ):
        load_settings({old: "1GB"})


def test_a_bad_value_stops_a_verb_with_one_line(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("MEMSCOPE_ANALYSIS_MEMORY_MB", "lots")
    for argv in (
        ["stats", str(run_dir)],
        ["query", str(run_dir), "SELECT 1"],
        ["analyze", str(run_dir), "--out", str(run_dir / "o"), "--quiet"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("memscope: bad setting: ") and "analysis_memory_mb" in err, err
        assert "Traceback" not in err


def test_stats_and_the_tracker_connection_use_it(run_dir, monkeypatch):
    from memscope.analyzers.runner import connect_analyzed

    monkeypatch.setenv("MEMSCOPE_ANALYSIS_MEMORY_MB", "300")
    con = connect_analyzed(run_dir)  # what `memscope stats` and api/offline.py open
    assert con.execute(LIMIT_SQL).fetchone()[0] == _duckdb_shows(300)


def test_query_uses_it(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("MEMSCOPE_ANALYSIS_MEMORY_MB", "310")
    for sql in (
        f"{LIMIT_SQL} AS m",
        f"{LIMIT_SQL} AS m FROM process_totals LIMIT 1",  # folds the state first
        f"{LIMIT_SQL} AS m FROM allocations LIMIT 1",
    ):  # matches blocks first
        assert main(["query", str(run_dir), sql, "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out) == [{"m": _duckdb_shows(310)}], sql


def test_analyze_runs_the_analyzers_under_it(run_dir, monkeypatch, tmp_path):
    import memscope.analyzers.memory as memory

    seen = []
    monkeypatch.setattr(
        memory, "run", lambda con, options: seen.append(con.execute(LIMIT_SQL).fetchone()[0])
    )
    monkeypatch.setenv("MEMSCOPE_ANALYSIS_MEMORY_MB", "320")
    assert (
        main(
            [
                "analyze",
                str(run_dir),
                "--out",
                str(tmp_path),
                "--only",
                "memory",
                "--jobs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert seen == [_duckdb_shows(320)]


def test_the_follower_uses_it(run_dir, monkeypatch, tmp_path):
    from memscope.analyzers.follow import Follower

    monkeypatch.setenv("MEMSCOPE_ANALYSIS_MEMORY_MB", "330")
    follower = Follower(run_dir / "events", AnalyzerOptions(out_dir=tmp_path), checkpoint=False)
    assert follower.con.execute(LIMIT_SQL).fetchone()[0] == _duckdb_shows(330)
