"""`memscope analyze --follow --metrics-port`: Prometheus metrics of a followed log (loopback)."""

import signal
import subprocess
import sys
import time
import urllib.request

import pyarrow as pa
import pytest
from prometheus_client import parser
from prometheus_client.openmetrics import parser as openmetrics_parser

from memscope.analyzers.common import AnalyzerOptions
from memscope.analyzers.follow import Follower
from memscope.analyzers.log_builder import LogBuilder, sample_log, split_memory, write_log
from memscope.analyzers.metrics import FollowerMetrics, network_facing
from memscope.commands.main import main
from memscope.commands.stats import collect
from memscope.config import Settings
from memscope.eventlog.log import LogWriter

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _scrape(url, openmetrics_format):
    request = urllib.request.Request(url)
    if openmetrics_format:
        request.add_header("Accept", OPENMETRICS)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


def _samples(url, openmetrics_format=True):
    """``{(name, frozenset(labels)): value}`` of one scrape, parsed by prometheus_client."""
    content_type, text = _scrape(url, openmetrics_format)
    if openmetrics_format:
        assert content_type.startswith("application/openmetrics-text"), content_type
        families = openmetrics_parser.text_string_to_metric_families(text)
    else:
        assert content_type.startswith("text/plain"), content_type
        families = parser.text_string_to_metric_families(text)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in families
        for s in family.samples
    }


def _by_pid(samples, name):
    return {int(dict(labels)["pid"]): value for (n, labels), value in samples.items() if n == name}


def _assert_equal_to_stats(samples, log):
    stats = collect(str(log))
    assert stats["processes"], "the log has processes"
    for key, metric in (
        ("active_memory", "memscope_active_bytes"),
        ("active_allocations", "memscope_active_blocks"),
        ("peak_memory", "memscope_peak_bytes"),
        ("total_allocations", "memscope_allocations_total"),
        ("total_allocated", "memscope_allocated_bytes_total"),
        ("total_deallocations", "memscope_frees_total"),
    ):
        assert _by_pid(samples, metric) == {p["pid"]: p[key] for p in stats["processes"]}, key


def _wait_for(url, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        samples = _samples(url)
        if predicate(samples):
            return samples
        assert time.monotonic() < deadline, "the follower did not publish in time"
        time.sleep(0.1)


def _settle(url):
    """Wait until the follower has run no round for a second."""
    rounds = None
    while True:
        now = _samples(url)[("memscope_follow_rounds_total", frozenset())]
        if now == rounds:
            return
        rounds = now
        time.sleep(1.0)


def _folded(samples):
    return samples.get(("memscope_events_folded_total", frozenset()), 0)


def _halves(tables):
    return split_memory(tables)


def test_the_follow_verb_serves_what_stats_prints_and_follows_the_log(tmp_path):
    tables = sample_log().tables()
    first, second = _halves(tables)
    events = tmp_path / "run" / "events"
    write_log(first, events)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memscope",
            "analyze",
            str(events),
            "--follow",
            "--quiet",
            "--interval",
            "0.1",
            "--out",
            str(tmp_path / "out"),
            "--metrics-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("memscope analyze --follow: metrics at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].strip()
        samples = _wait_for(url, lambda s: _folded(s) == first["memory"].num_rows)
        _assert_equal_to_stats(samples, events)
        assert _assert_equal_to_stats(_samples(url, openmetrics_format=False), events) is None
        assert samples[("memscope_follow_rounds_total", frozenset())] == 1
        assert 0 <= samples[("memscope_follow_lag_seconds", frozenset())] < 600
        programs = {
            dict(labels)["program"] for (name, labels) in samples if name == "memscope_active_bytes"
        }
        assert programs == {"app.py"}  # argv[0]'s base name
        # the log grows: the next round publishes the new figures
        writer = LogWriter(events, Settings())
        writer.append(
            "memory", pa.Table.from_batches(second["memory"].to_batches(), second["memory"].schema)
        )
        writer.close()
        samples = _wait_for(url, lambda s: _folded(s) == tables["memory"].num_rows)
        assert samples[("memscope_follow_rounds_total", frozenset())] >= 2
        _assert_equal_to_stats(samples, events)
        _settle(url)  # stop between rounds (an interrupt inside DuckDB is a DuckDB error)
    finally:
        proc.send_signal(signal.SIGTERM)  # a service manager's stop: a clean exit
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def _two_callers_one_line():
    b = LogBuilder()
    b.process(7, 0, argv=["/srv/bin/worker.py", "--fast"])
    via_a = b.stack(7, [("main", "w.py", 1), ("a", "w.py", 10), ("alloc", "w.py", 99)])
    via_b = b.stack(7, [("main", "w.py", 1), ("b", "w.py", 20), ("alloc", "w.py", 99)])
    other = b.stack(7, [("main", "w.py", 1), ("small", "w.py", 30)])
    b.alloc(7, 10, 0x1000, 100, stack_id=via_a)
    b.alloc(7, 20, 0x2000, 200, stack_id=via_b)
    b.alloc(7, 30, 0x3000, 50, stack_id=other)
    b.alloc(7, 40, 0x4000, 1000, stack_id=other)
    b.free(7, 50, 0x4000)
    return b


def test_sites_are_summed_by_location_and_bounded_per_process(tmp_path):
    events = write_log(_two_callers_one_line().tables(), tmp_path / "run" / "events")
    follower = Follower(
        events, AnalyzerOptions(out_dir=tmp_path / "o"), only=["memory"], checkpoint=False
    )
    metrics = FollowerMetrics("127.0.0.1", 0, top_sites=2)
    try:
        before = _samples(metrics.url)
        assert ("memscope_follow_lag_seconds", frozenset()) not in before  # nothing folded
        assert _folded(before) == 0
        follower.step()
        metrics.publish(follower)
        sites = {
            dict(labels)["location"]: value
            for (name, labels), value in _samples(metrics.url).items()
            if name == "memscope_site_live_bytes"
        }
        assert sites == {"alloc (w.py:99)": 300, "small (w.py:30)": 50}
        assert metrics.collector.snapshot.processes[0].program == "worker.py"
        metrics.top_sites = 1
        metrics.publish(follower)
        follower.con.close()  # scrapes read the published snapshot, never the connection
        samples = _samples(metrics.url, openmetrics_format=False)
        sites = {
            dict(labels)["location"]: value
            for (name, labels), value in samples.items()
            if name == "memscope_site_live_bytes"
        }
        assert sites == {"alloc (w.py:99)": 300}
        assert _by_pid(samples, "memscope_active_bytes") == {7: 350}
    finally:
        metrics.stop()


def test_metrics_need_follow_and_a_free_port(sample_log_dir, capsys):
    events = sample_log_dir
    assert main(["analyze", str(events), "--metrics-port", "0"]) == 2
    assert "add --follow" in capsys.readouterr().err
    taken = FollowerMetrics("127.0.0.1", 0)
    try:
        assert main(["analyze", str(events), "--follow", "--metrics-port", str(taken.port)]) == 2
        assert "pick another --metrics-port" in capsys.readouterr().err
    finally:
        taken.stop()


@pytest.mark.parametrize(
    "host, facing",
    [
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
        ("127.0.0.2", False),
        ("0.0.0.0", True),
        ("10.1.2.3", True),
        ("metrics.example", True),
    ],
)
def test_only_loopback_is_not_network_facing(host, facing):
    assert network_facing(host) is facing


def test_each_process_stats_equals_process_stats_for_every_mode():
    from memscope.analyzers.memstats import each_process_stats, process_stats
    from memscope.analyzers.runner import connect_tables_analyzed

    b = sample_log()
    b.process(300, 0, mode="sampled", sample_bytes=4096, argv=["s.py"])
    b.alloc(300, 10, 0x9000, 100)
    b.alloc(300, 20, 0xA000, 8000)
    b.free(300, 30, 0x9000)
    b.process(400, 0, mode="aggregated", argv=["a.py"])
    b.alloc(400, 10, 0xB000, 64)
    b.aggregate(400, 20, stack_id=0, alloc_count=5, alloc_bytes=500)
    b.producer_stats(400, 40, peak_bytes=9999, current_bytes=64)
    con = connect_tables_analyzed(b.tables())
    pids = [100, 101, 300, 400, 999]  # 999: no such process, all zeros like stats prints
    each = each_process_stats(con, pids)
    assert each == {pid: process_stats(con, pid) for pid in pids}
    assert each[300].get("estimated") and each[400]["peak_memory"] == 9999
