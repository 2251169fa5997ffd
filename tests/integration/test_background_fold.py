"""Reports prepared while a log is written give the files a finished log gives.

A :class:`BackgroundFold` follows a log as a writer appends to it (the way ``memscope run``
folds its embedded broker's log during the program); its checkpoint must make ``run_all``
write byte-identical files to a fold of the finished log from scratch. The SVG renderer child
must write the bytes an ordinary (cold) render writes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from memscope.analyzers import ANALYZERS, run_all
from memscope.analyzers.background import BackgroundFold
from memscope.analyzers.log_builder import LogBuilder, sample_log
from memscope.analyzers.runner import fold_params
from memscope.analyzers.state import STATE_DIRNAME, AnalysisState, windows
from memscope.config import Settings
from memscope.eventlog.log import LogWriter


def _wait_rounds(fold: BackgroundFold, rounds: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while fold.rounds < rounds and time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.parametrize("starts_first", [True, False], ids=["starts-first", "starts-last"])
def test_a_log_folded_while_written_gives_the_files_of_a_fold_from_scratch(tmp_path, starts_first):
    """The sample log's events are out of time order across slices: the hold-back orders them.

    Each process's exit row lands after its last events (as a producer's final batch); from
    then on its events are folded without waiting.
    """
    tables = sample_log().tables()
    processes = tables["processes"]
    exits = pc.equal(processes.column("event"), "exit")
    events = tmp_path / "run" / "events"
    writer = LogWriter(events, Settings().replace(segment_max_bytes=4096))
    fold = BackgroundFold(events, fold_params(None), interval=0.005).start()
    try:
        if starts_first:
            writer.append("processes", processes.filter(pc.invert(exits)))
        for name in tables:
            if name not in ("memory", "processes"):
                writer.append(name, tables[name])
        memory = tables["memory"]
        for start in range(0, memory.num_rows, 7):  # a growing log, several segments
            writer.append("memory", memory.slice(start, 7))
            writer.flush(sync=False)
            _wait_rounds(fold, fold.rounds + 1)
        writer.append("processes", processes.filter(exits) if starts_first else processes)
        writer.flush(sync=False)
        _wait_rounds(fold, fold.rounds + 2)
    finally:
        writer.close()
    state = fold.finish(background_save=True)
    assert fold.error is None and state is not None
    assert fold.rounds > 3
    assert state.events == memory.num_rows
    state.release_fold()  # what memscope run does: the reports read the exported tables
    run_all(events, tmp_path / "followed", state=state)  # the state handed over
    assert (events / STATE_DIRNAME / "state.json").exists()  # saved meanwhile
    run_all(events, tmp_path / "checkpoint")
    shutil.rmtree(events / STATE_DIRNAME)
    run_all(events, tmp_path / "scratch")
    for analyzer in ANALYZERS.values():
        name = analyzer.file_name()
        scratch = (tmp_path / "scratch" / name).read_bytes()
        assert (tmp_path / "followed" / name).read_bytes() == scratch, name
        assert (tmp_path / "checkpoint" / name).read_bytes() == scratch, name


def _memory(pid_ts: list[tuple[int, int]]) -> pa.RecordBatch:
    b = LogBuilder()
    for i, (pid, ts) in enumerate(pid_ts):
        b.alloc(pid, ts, 0x1000 + 16 * i, 16)
    return b.tables()["memory"].to_batches()[0]


def test_the_tail_of_ended_processes_is_not_held_back():
    batch = _memory([(1, 1_000), (1, 2_000), (2, 3_000), (1, 3_000_000_000)])

    def folded(ended):
        held: list[pa.RecordBatch] = []
        rows = sum(
            len(w["pid"])
            for w in windows([batch], 1 << 20, 1_000_000_000, held, keep=True, ended=ended)
        )
        return rows, sum(b.num_rows for b in held)

    assert folded(None) == (0, 4)  # pid 2's latest event is the threshold: nothing is old
    assert folded(lambda: {1}) == (0, 4)  # pid 2 may still send older events
    assert folded(lambda: {1, 2}) == (4, 0)


def test_ended_counts_every_producer_of_a_pid():
    state = AnalysisState()
    b = LogBuilder()
    b.process(1, 0, exit_ts_ns=10)
    b.process(2, 0)
    state.register_processes(b.tables()["processes"].to_batches()[0])
    assert state.ended() == {1}
    # an exec-ed program: a second producer of pid 1 started and has not exited
    later = LogBuilder()
    later.process(1, 20)
    state.register_processes(later.tables()["processes"].to_batches()[0])
    assert state.ended() == set()


def test_the_svg_renderer_writes_the_bytes_of_a_cold_render(tmp_path):
    from memscope.exporters.render_worker import FILES, SvgRenderer
    from memscope.exporters.sample_reports import write_sample_reports

    source = tmp_path / "analysis"
    write_sample_reports(source, n_vars=12, n_allocs=5_000)
    renderer = SvgRenderer()
    (tmp_path / "child").mkdir()
    renderer.submit(source, tmp_path / "child")
    written = renderer.result()
    assert [p.name for p in written] == list(FILES)
    code = (
        "import sys; from memscope.exporters import write_reports; "
        "write_reports(sys.argv[1], sys.argv[2], only=sys.argv[3:])"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(source), str(tmp_path / "cold"), *FILES], check=True
    )
    for name in FILES:
        child = (tmp_path / "child" / name).read_bytes()
        assert child.startswith(b"<svg") and len(child) > 1000
        assert child == (tmp_path / "cold" / name).read_bytes()


def test_a_failed_render_is_an_error_line_not_a_hang(tmp_path):
    from memscope.exporters.render_worker import SvgRenderer

    renderer = SvgRenderer()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    renderer.submit(tmp_path, blocker / "out")
    with pytest.raises(RuntimeError, match="Error"):
        renderer.result()


def test_a_failed_background_fold_leaves_the_fold_to_the_reports(tmp_path, capsys):
    fold = BackgroundFold(tmp_path / "missing" / "events", interval=0.005)
    fold.error = RuntimeError("boom")
    assert fold.finish() is None
    assert "background fold failed (RuntimeError: boom)" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_memscope_runs_reports_equal_a_report_of_its_log(tmp_path):
    """Folded during the program, the SVG drawn by the warmed child: the same bytes as
    ``memscope report`` writes from the finished log afterwards."""
    from api_support import memscope_run, python

    script = tmp_path / "prog.py"
    script.write_text(
        "import threading\n"
        "import memscope\n"
        "keep = []\n"
        "def work(n):\n"
        "    for i in range(n):\n"
        "        b = bytearray(16 + i % 64)\n"
        "        if i % 16 == 0:\n"
        "            keep.append(b)\n"
        "names = {'a': [1, 2, 3]}\n"
        "memscope.track_var(names)\n"
        "threads = [threading.Thread(target=work, args=(20000,)) for _ in range(2)]\n"
        "for t in threads:\n"
        "    t.start()\n"
        "work(50000)\n"
        "for t in threads:\n"
        "    t.join()\n"
    )
    run = tmp_path / "run"
    done = memscope_run(["--out", run, script], timeout=180)
    assert done.returncode == 0, done.stderr
    again = python(
        ["-m", "memscope", "report", run / "events", "--out", tmp_path / "again"], timeout=180
    )
    assert again.returncode == 0, again.stderr
    names = sorted(p.name for p in (tmp_path / "again").iterdir() if p.is_file())
    assert "memory_analysis.svg" in names and "snapshot_memory_analysis.json" in names
    assert len(names) == 11  # the six analyses, both SVGs, the flame graph, snapshot, dashboard
    for name in names:
        ours, theirs = (run / name).read_bytes(), (tmp_path / "again" / name).read_bytes()
        if name == "memory_snapshot.json":  # it records when it was exported: all else equal
            ours, theirs = (re.sub(rb'"timestamp": "[^"]*"', b"", x) for x in (ours, theirs))
        assert ours == theirs, name
