"""``memscope run``'s path from the program's exit to its reports (issue 12).

The analyses the SVG is drawn from run first without changing any file or the order they
are listed in; the renderer's warm-up cannot change the SVG's clip-path ids; the timings
that ``bench/bench_exit.py --timings`` reads are printed only when asked for.
"""

from __future__ import annotations

import subprocess
import sys

from memscope.analyzers import ANALYZERS, run_all
from memscope.analyzers.log_builder import sample_log, write_log
from memscope.commands.run_reports import SVG_SOURCES


def test_the_svg_sources_run_first_and_the_files_are_the_same(tmp_path):
    log = write_log(sample_log().tables(), tmp_path / "events")
    plain = run_all(log, tmp_path / "plain")
    steps: list[str] = []
    early = run_all(log, tmp_path / "early", progress=steps.append, first=SVG_SOURCES)
    assert steps[0] == "prepare"
    assert set(steps[1:4]) == set(SVG_SOURCES)
    assert sorted(steps[1:]) == sorted(ANALYZERS)
    assert [p.name for p in early] == [p.name for p in plain]  # registry order
    for a, b in zip(plain, early, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_the_warm_up_makes_no_clip_path():
    from memscope.exporters.render_worker import warm_up

    svg = warm_up()
    assert svg.startswith("<svg") and "clip" not in svg


def test_timings_are_printed_only_when_asked_for():
    code = "from memscope.timings import mark; mark('a step')"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""
    loud = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"MEMSCOPE_TIMINGS": "1", "PATH": ""},
    )
    lines = loud.stderr.splitlines()
    assert lines[0].startswith("memscope-timing ") and lines[0].endswith(" a step")
    assert lines[-1].endswith(" interpreter exiting")


def test_a_live_process_tracing_into_the_broker_is_seen(tmp_path):
    import os
    import uuid

    from memscope.commands.descendants import tracing_into

    address = f"ipc://{tmp_path}/b-{uuid.uuid4().hex[:8]}"
    assert tracing_into(address) is False
    env = {**os.environ, "MEMSCOPE_BROKER_ADDRESS": address, "MEMSCOPE_DISABLE": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, env=env
    )
    try:
        assert tracing_into(address) is True
        assert tracing_into(address, exclude={child.pid}) is False
        assert tracing_into(address + "x") is False
    finally:
        child.communicate(b"")
    assert tracing_into(address) is False  # reaped
    assert tracing_into(address, proc=tmp_path / "no-proc") is None


def test_a_child_left_running_by_the_program_is_waited_for(tmp_path):
    """The program starts a traced child and exits at once: the child is still waited for."""
    from api_support import memscope_run, table

    script = tmp_path / "prog.py"
    script.write_text(
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.6); "
        "keep = [bytearray(100) for _ in range(1000)]'])\n"
    )
    run = tmp_path / "run"
    done = memscope_run(["--no-report", "--out", run, script], timeout=120)
    assert done.returncode == 0, done.stderr
    rows = table(run / "events", "processes", ["pid", "event"])
    pids = {r["pid"] for r in rows}
    exited = {r["pid"] for r in rows if r["event"] == "exit"}
    assert len(pids) == 2 and exited == pids, rows
