"""Every reading verb on a broken log: one line, a documented exit status, never a traceback."""

from __future__ import annotations

import pytest

from memscope.analyzers.log_builder import sample_log, write_log
from memscope.commands.main import main
from memscope.eventlog import integrity

VERBS = {
    "stats": lambda log, out: ["stats", str(log)],
    "query": lambda log, out: ["query", str(log), "SELECT count(*) AS n FROM events"],
    "analyze": lambda log, out: ["analyze", str(log), "--out", str(out), "--quiet"],
    "report": lambda log, out: ["report", str(log), "--out", str(out)],
}


def _log(tmp_path):
    return write_log(sample_log().tables(), tmp_path / "run" / "events")


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err + captured.out


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_garbage_manifest_is_one_line_and_status_2(tmp_path, capsys, verb):
    events = _log(tmp_path)
    (events / "manifest.json").write_text("{not json")
    code, err = _run(capsys, VERBS[verb](events, tmp_path / "out"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "cannot read the manifest" in err


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_segment_missing_from_disk_is_named_with_status_1(tmp_path, capsys, verb):
    events = _log(tmp_path)
    (events / "memory" / "memory-000000.arrow").unlink()
    code, err = _run(capsys, VERBS[verb](events, tmp_path / "out"))
    assert code == 1
    assert "memory/memory-000000.arrow: listed in the manifest but missing from disk" in err


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_damaged_batch_is_named_with_status_1(tmp_path, capsys, verb):
    events = _log(tmp_path)
    segment = events / "variables" / "variables-000000.arrow"
    first = integrity.read_records(segment)[0]
    data = bytearray(segment.read_bytes())
    data[first.offset + first.length - 10] ^= 1
    segment.write_bytes(bytes(data))
    code, err = _run(capsys, VERBS[verb](events, tmp_path / "out"))
    assert code == 1
    assert "variables-000000.arrow: batch 0" in err


def test_an_unreadable_log_is_named_by_its_path_not_a_reader_object(tmp_path):
    from memscope.analyzers.views import open_reader
    from memscope.commands.query import open_or_fail
    from memscope.errors import CliError

    reader = open_reader(_log(tmp_path))

    def failing(log, **_):
        raise ValueError("Invalid IPC message")

    with pytest.raises(CliError) as caught:
        open_or_fail(reader, failing)
    assert str(caught.value) == f"cannot read log {reader.path}: Invalid IPC message"


def test_a_garbage_segment_file_is_a_named_problem(tmp_path, capsys):
    events = _log(tmp_path)
    (events / "memory" / "memory-000000.arrow").write_bytes(b"ARROW1\0\0garbage")
    code, err = _run(capsys, ["stats", str(events)])
    assert code == 1 and "object at 0x" not in err
    assert "memory/memory-000000.arrow" in err
