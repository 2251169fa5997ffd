"""End to end: `memscope analyze --follow` refreshes the files, the served page follows."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from _browser import browser, watched  # noqa: F401 - fixtures

from memscope.exporters.dashboard_server import DashboardServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def write_log(events, tables):
    from memscope.eventlog.log import LogWriter

    writer = LogWriter(events)
    for name, table in tables.items():
        if table.num_rows:
            writer.append(name, table)
    writer.close()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_growing_log_reaches_the_open_page(tmp_path, watched):  # noqa: F811
    from memscope.analyzers.log_builder import LogBuilder, sample_log

    events, out = tmp_path / "run" / "events", tmp_path / "reports"
    write_log(events, sample_log().tables())
    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memscope",
            "analyze",
            str(events),
            "--out",
            str(out),
            "--follow",
            "--interval",
            "0.3",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = None
    try:
        memory_file = out / "snapshot_memory_analysis.json"
        wait_for(memory_file.exists, 120, "the first analysis")
        before = json.loads(memory_file.read_text())["memory_stats"]["total_allocations"]
        server = DashboardServer(out, port=0, poll_interval=0.2).start()
        page = watched.page
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_function("document.getElementById('status').textContent === 'live'")
        # the traced program goes on: 1,000 more allocations land in a new segment
        more = LogBuilder()
        for i in range(1000):
            more.alloc(100, ts_ns=950_000 + i, address=0x9000_0000 + 64 * i, size=48)
        tables = more.tables()
        write_log(events, {"memory": tables["memory"]})
        page.wait_for_function("Number(document.body.dataset.updates || 0) >= 1", timeout=120_000)
        wait_for(
            lambda: (
                json.loads(memory_file.read_text())["memory_stats"]["total_allocations"]
                == before + 1000
            ),
            60,
            "the analysis of the new events",
        )
        page.wait_for_function(
            "[...document.querySelectorAll('#panel-overview .card .value')]"
            f".some(e => e.textContent === '{before + 1000:,}')",
            timeout=60_000,
        )
        assert watched.errors == [] and watched.dialogs == []
    finally:
        if server is not None:
            server.stop()
        follow.terminate()
        follow.wait(timeout=20)
