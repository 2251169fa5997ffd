"""``memscope run``'s path from the program's exit to its reports (issue 12).

The analyses the SVG is drawn from run first without changing any file or the order they
are listed in; the renderer's warm-up cannot change the SVG's clip-path ids; the timings
that ``bench/bench_exit.py --timings`` reads are printed only when asked for.
"""

from __future__ import annotations

import subprocess
import sys

from memscope.analyzers import ANALYZERS, run_all
from memscope.analyzers.testing import sample_log, write_log
from memscope.producer.run_reports import SVG_SOURCES


def test_the_svg_sources_run_first_and_the_files_are_the_same(tmp_path):
    log = write_log(sample_log().tables(), tmp_path / "events")
    plain = run_all(log, tmp_path / "plain")
    steps: list[str] = []
    early = run_all(log, tmp_path / "early", progress=steps.append, first=SVG_SOURCES)
    assert steps[0] == "prepare"
    assert set(steps[1:4]) == set(SVG_SOURCES)
    assert sorted(steps[1:]) == sorted(ANALYZERS)
    assert [p.name for p in early] == [p.name for p in plain]  # registry order
    for a, b in zip(plain, early):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_the_warm_up_makes_no_clip_path():
    from memscope.exporters.render_worker import warm_up

    svg = warm_up()
    assert svg.startswith("<svg") and "clip" not in svg


def test_timings_are_printed_only_when_asked_for():
    code = "from memscope.producer.timings import mark; mark('a step')"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert quiet.stderr == ""
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={"MEMSCOPE_TIMINGS": "1", "PATH": ""})
    lines = loud.stderr.splitlines()
    assert lines[0].startswith("memscope-timing ") and lines[0].endswith(" a step")
    assert lines[-1].endswith(" interpreter exiting")
