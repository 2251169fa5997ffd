"""Progress on stderr: drawn on a terminal (a fake one here), nothing anywhere else."""

import io
import json
import sys

import pytest

from memscope.analyzers.log_builder import sample_log, write_log
from memscope.commands import progress as _progress
from memscope.commands.main import main
from memscope.commands.progress import ProgressBar, StatusLine

EVENTS = sample_log().tables()["memory"].num_rows


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def every_redraw(monkeypatch):
    monkeypatch.setattr(_progress, "REDRAW_S", 0.0)  # see each redraw, not one per 0.1 s


@pytest.fixture
def run_dir(tmp_path):
    """A log never analyzed (no checkpoint): the verbs fold it."""
    write_log(sample_log().tables(), tmp_path / "run" / "events")
    return tmp_path / "run"


def _terminal(monkeypatch):
    """Make stderr a fake terminal (in the test body: pytest's capture resets it per phase)."""
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def test_a_bar_is_redrawn_on_a_terminal_and_ends_its_line():
    out = FakeTerminal()
    bar = ProgressBar(2, "work", stream=out)
    bar.folded(1_234_567)
    bar.step("one")
    bar.step("two")
    text = out.getvalue()
    assert text.startswith("\rwork [") and text.endswith("\n")
    assert "folded 1,234,567 events" in text and "1/2" in text and "2/2" in text
    assert "\n" not in text[:-1]  # one line, redrawn


def test_a_status_line_is_cleared_when_done():
    out = FakeTerminal()
    with StatusLine("stats", stream=out) as line:
        line.folded(50)
    text = out.getvalue()
    assert "\rstats: folded 50 events (" in text
    assert text.endswith("\r") and text.rsplit("\r", 2)[1].strip() == ""  # blanked


def test_nothing_is_written_when_not_a_terminal():
    out = io.StringIO()
    bar = ProgressBar(2, "work", stream=out)
    bar.folded(10)
    bar.step("one")
    bar.step("two")
    with StatusLine("stats", stream=out) as line:
        line.folded(50)
    assert out.getvalue() == ""


def test_an_unfinished_bar_is_cleared_on_close():
    out = FakeTerminal()
    with ProgressBar(3, "work", stream=out) as bar:
        bar.step("one")
    assert out.getvalue().endswith("\r") and "\n" not in out.getvalue()


def test_stats_shows_the_fold_on_a_terminal(run_dir, monkeypatch):
    terminal = _terminal(monkeypatch)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["stats", str(run_dir), "--json"]) == 0
    assert f"stats: folded {EVENTS} events" in terminal.getvalue()
    assert json.loads(out.getvalue())["total"]["total_allocations"] > 0


def test_analyze_shows_the_fold_and_each_analyzer(run_dir, monkeypatch, tmp_path):
    terminal = _terminal(monkeypatch)
    assert main(["analyze", str(run_dir), "--out", str(tmp_path / "o"), "--jobs", "1"]) == 0
    text = terminal.getvalue()
    assert f"folded {EVENTS} events" in text and "7/7" in text and text.endswith("\n")


def test_query_shows_the_fold_and_the_block_matching(run_dir, monkeypatch):
    terminal = _terminal(monkeypatch)
    assert main(["query", str(run_dir), "SELECT count(*) FROM process_totals"]) == 0
    assert f"query: folded {EVENTS} events" in terminal.getvalue()
    assert main(["query", str(run_dir), "SELECT count(*) FROM allocations"]) == 0
    assert f"query: read {EVENTS} memory events" in terminal.getvalue()


def test_report_shows_analyzers_and_exporters(run_dir, monkeypatch, tmp_path):
    terminal = _terminal(monkeypatch)
    from memscope.analyzers import ANALYZERS
    from memscope.exporters import EXPORTERS

    assert main(["report", str(run_dir), "--out", str(tmp_path / "r")]) == 0
    total = len(ANALYZERS) + 1 + len(EXPORTERS)
    text = terminal.getvalue()
    assert f"folded {EVENTS} events" in text and f"{total}/{total}" in text
    assert "dashboard.html" in text


def test_run_s_reports_show_progress(run_dir, monkeypatch, tmp_path):
    terminal = _terminal(monkeypatch)
    from memscope.commands.run import _report

    _report(run_dir / "events", tmp_path / "out")
    text = terminal.getvalue()
    assert "memscope: reports [" in text and f"folded {EVENTS} events" in text
    assert "wrote " in text  # its messages still follow


def test_the_verbs_print_no_progress_when_stderr_is_not_a_terminal(run_dir, tmp_path, capsys):
    assert main(["stats", str(run_dir)]) == 0
    assert main(["query", str(run_dir), "SELECT count(*) FROM process_totals"]) == 0
    assert main(["analyze", str(run_dir), "--out", str(tmp_path / "o"), "--jobs", "1"]) == 0
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().err == ""


def test_query_shows_the_decoding_of_a_chunk_log(tmp_path, monkeypatch, capsys):
    from memscope.eventlog.chunks import encode_memory_table

    tables = sample_log().tables()
    tables["memory_chunks"] = encode_memory_table(tables.pop("memory"))
    run_dir = write_log(tables, tmp_path / "run" / "events").parent
    sql = "SELECT count(*) AS n FROM events"
    assert main(["query", str(run_dir), sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": EVENTS}]  # every event decoded
    terminal = _terminal(monkeypatch)
    assert main(["query", str(run_dir), sql]) == 0
    assert f"query: read {EVENTS} memory events" in terminal.getvalue()
