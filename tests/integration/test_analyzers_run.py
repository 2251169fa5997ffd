"""run_all and `memscope analyze` over logs on disk written by the broker's LogWriter."""

import json

import jsonschema
import pytest

from memscope.analyzers import ANALYZERS, run_all
from memscope.analyzers.common import load_schema
from memscope.analyzers.log_builder import sample_log, write_log
from memscope.analyzers.runner import AnalysisError
from memscope.commands.main import main


@pytest.fixture
def run_dir(tmp_path):
    write_log(sample_log().tables(), tmp_path / "run" / "events", memory_segments=3)
    return tmp_path / "run"


def _load(directory):
    return {a.kind: json.loads((directory / a.file_name()).read_text()) for a in ANALYZERS.values()}


def test_every_file_is_written_and_valid(run_dir):
    written = run_all(run_dir / "events")
    assert [p.name for p in written] == [a.file_name() for a in ANALYZERS.values()]
    assert all(p.parent == run_dir for p in written)  # default: the run directory
    for kind, report in _load(run_dir).items():
        jsonschema.validate(report, load_schema(ANALYZERS[kind].file_kind))
        assert report["metadata"]["processes"] == [100, 101]
        assert report["metadata"]["source_log_id"]


def test_two_runs_give_identical_files(run_dir, tmp_path):
    run_all(run_dir, tmp_path / "a", jobs=1)
    run_all(run_dir, tmp_path / "b", jobs=2)
    for a in ANALYZERS.values():
        first = (tmp_path / "a" / a.file_name()).read_bytes()
        assert first == (tmp_path / "b" / a.file_name()).read_bytes(), a.file_name()


def test_a_run_from_the_checkpoint_equals_a_run_from_scratch(run_dir, tmp_path):
    import shutil

    from memscope.analyzers.state import STATE_DIRNAME

    checkpoint = run_dir / "events" / STATE_DIRNAME
    run_all(run_dir, tmp_path / "first")
    assert (checkpoint / "state.json").exists()
    stamp = (checkpoint / "state.json").stat().st_mtime_ns
    run_all(run_dir, tmp_path / "again")  # nothing new: the checkpoint is read, not rewritten
    assert (checkpoint / "state.json").stat().st_mtime_ns == stamp
    (checkpoint / "sites.arrow").write_bytes(b"damaged")
    run_all(run_dir, tmp_path / "damaged")  # a damaged checkpoint is folded again
    sites = checkpoint / "sites.arrow"
    flipped = bytearray(sites.read_bytes())
    flipped[len(flipped) // 2] ^= 0x10  # one bit in the data: still a readable file
    sites.write_bytes(bytes(flipped))
    run_all(run_dir, tmp_path / "flipped")
    shutil.rmtree(checkpoint)
    run_all(run_dir, tmp_path / "scratch")
    for a in ANALYZERS.values():
        first = (tmp_path / "first" / a.file_name()).read_bytes()
        for other in ("again", "damaged", "flipped", "scratch"):
            assert first == (tmp_path / other / a.file_name()).read_bytes(), (other, a)


def test_only_and_base(run_dir, tmp_path):
    written = run_all(run_dir, tmp_path, base="x", only=["security", "unsafe_ffi"])
    assert [p.name for p in written] == ["x_security_violations.json", "x_unsafe_ffi.json"]
    with pytest.raises(ValueError, match="unknown analyzer 'nope'"):
        run_all(run_dir, tmp_path, only=["nope"])


def test_a_corrupt_segment_is_named_and_the_rest_analyzed(run_dir, tmp_path, capsys):
    segments = sorted((run_dir / "events" / "memory").glob("memory-*.arrow"))
    assert len(segments) == 3
    damaged = segments[1]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    code = main(["analyze", str(run_dir), "--out", str(tmp_path / "out"), "--quiet", "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "memory/" + damaged.name in err and "damaged log" in err
    memory = json.loads((tmp_path / "out" / "snapshot_memory_analysis.json").read_text())
    assert any(damaged.name in p for p in memory["metadata"]["log_problems"])
    # the other two segments were read: their allocations are counted
    assert memory["memory_stats"]["total_allocations"] > 0


def test_analyze_cli_writes_the_six_files(run_dir, tmp_path, capsys):
    assert (
        main(
            [
                "analyze",
                str(run_dir / "events"),
                "--out",
                str(tmp_path / "o"),
                "--only",
                "memory,lifecycle",
                "--jobs",
                "2",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert out.split() == [
        str(tmp_path / "o" / "snapshot_memory_analysis.json"),
        str(tmp_path / "o" / "snapshot_lifetime.json"),
    ]
    assert err == ""  # stderr is no terminal: no progress bar (integration/test_progress.py)


def test_a_failing_analyzer_does_not_stop_the_others(run_dir, tmp_path, monkeypatch):
    import memscope.analyzers.ffi as ffi

    def broken(con, options):
        raise RuntimeError("boom")

    monkeypatch.setattr(ffi, "run", broken)
    with pytest.raises(AnalysisError, match="ffi: RuntimeError: boom") as info:
        run_all(run_dir, tmp_path, only=["memory", "ffi"])
    assert [p.name for p in info.value.written] == ["snapshot_memory_analysis.json"]


def test_not_a_log_is_a_clear_error(tmp_path, capsys):
    assert main(["analyze", str(tmp_path)]) == 2
    assert "not a memscope log" in capsys.readouterr().err


def test_the_package_re_exports_the_runner_s_run_all():
    import memscope.analyzers
    from memscope.analyzers import runner

    assert memscope.analyzers.run_all is runner.run_all
