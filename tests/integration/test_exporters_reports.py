"""Finding and loading the six files, the snapshot JSON, number formatting, write_reports."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memscope.exporters import KINDS, ReportProblem, find_reports, load_reports, write_reports
from memscope.exporters.formatting import human_bytes, human_duration_ns
from memscope.exporters.sample_reports import write_sample_reports
from memscope.exporters.snapshot_json import MemorySnapshotJson

REAL_SAMPLE = Path(__file__).parents[1] / "data" / "analysis_sample"


def test_find_reports_by_suffix_newest_wins(tmp_path):
    write_sample_reports(tmp_path, base="old")
    newer = write_sample_reports(tmp_path, base="run2")
    stamp = newer["lifetime"].stat().st_mtime_ns + 10**9
    os.utime(newer["lifetime"], ns=(stamp, stamp))
    (tmp_path / "notes.json").write_text("{}")
    found = find_reports(tmp_path)
    assert set(found) == set(KINDS)
    assert found["lifetime"].name == "run2_lifetime.json"
    assert found["memory_analysis"].name.endswith("_memory_analysis.json")


def test_seed_style_names_are_found(tmp_path):
    (tmp_path / "snapshot_memory_analysis_memory_analysis.json").write_text("{}")
    (tmp_path / "snapshot_unsafe_ffi.json").write_text("{}")
    assert set(find_reports(tmp_path)) == {"memory_analysis", "unsafe_ffi"}


def test_missing_and_corrupt_files_are_problems_not_crashes(tmp_path):
    paths = write_sample_reports(tmp_path)
    paths["performance"].unlink()
    paths["lifetime"].write_text('{"variables": [')
    paths["complex_types"].write_text("[1, 2]")
    paths["unsafe_ffi"].write_bytes(b'{"a": "\xff"}')
    reports = load_reports(tmp_path)
    assert isinstance(reports["memory_analysis"], dict)
    perf, life, cpx, ffi = (
        reports[k] for k in ("performance", "lifetime", "complex_types", "unsafe_ffi")
    )
    assert isinstance(perf, ReportProblem) and "no *_performance.json" in perf.message
    assert isinstance(life, ReportProblem) and "not valid JSON (line 1" in life.message
    assert isinstance(cpx, ReportProblem) and "JSON list, not an object" in cpx.message
    assert isinstance(ffi, ReportProblem) and "UTF-8" in ffi.message


def test_human_formats():
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024 * 1024) == "5.0 MiB"
    assert human_bytes(None) == "not measured"
    assert human_duration_ns(1_500_000) == "1.5 ms"
    assert human_duration_ns(2_500_000_000) == "2.50 s"


@pytest.mark.parametrize("source", ["analyzers-sample", "synthetic"])
def test_snapshot_matches_the_input(tmp_path, source):
    if source == "synthetic":
        write_sample_reports(tmp_path, n_vars=30)
        directory = tmp_path
    else:
        directory = REAL_SAMPLE
    mem = json.loads(next(directory.glob("*_memory_analysis.json")).read_text())
    exporter = MemorySnapshotJson()
    buf = io.BytesIO()
    exporter.render(exporter.build(load_reports(directory)), buf)
    snap = json.loads(buf.getvalue())
    assert set(snap) == {"memory_hierarchy", "summary", "metadata"}
    stats = mem["memory_stats"]
    assert snap["summary"] == {
        "active_allocations": stats["active_allocations"],
        "active_memory_bytes": stats["active_memory"],
        "peak_memory_bytes": stats["peak_memory"],
        "total_allocations": stats["total_allocations"],
        "total_deallocations": stats["total_deallocations"],
        "total_memory_bytes": stats["total_allocated"],
        "total_freed_bytes": stats["total_freed"],
    }
    hierarchy = snap["memory_hierarchy"]
    assert set(hierarchy) == set(mem["memory_hierarchy"])
    for cat, node in mem["memory_hierarchy"].items():
        out = hierarchy[cat]
        assert out["summary"]["total_size_bytes"] == node["summary"]["total_size_bytes"]
        for sub, sub_node in node["subcategories"].items():
            out_sub = out["subcategories"][sub]
            assert out_sub["summary"]["total_size_bytes"] == sub_node["summary"]["total_size_bytes"]
            by_name = {t["type_name"]: t for t in out_sub["types"]}
            for t in sub_node["types"]:
                row = by_name[t["type_name"]]
                assert row["size_bytes"] == t["size_bytes"]
                assert row["allocation_count"] == t["allocation_count"]
                assert sorted(row["variable_names"]) == sorted(t["variable_names"])
    # every tracked variable appears once among the allocations, with its size and birth
    variables = sorted((v["name"], v["size"], v["created_ts_ns"]) for v in mem["tracked_variables"])
    allocations = sorted(
        (a["variable_name"], a["size_bytes"], a["allocation_time_ns"])
        for c in hierarchy.values()
        for s in c["subcategories"].values()
        for t in s["types"]
        for a in t["allocations"]
    )
    assert allocations == variables
    assert snap["metadata"]["source"]["source_log_id"] == mem["metadata"]["source_log_id"]


def test_snapshot_leaves_unmeasured_values_out(tmp_path):
    (tmp_path / "x_memory_analysis.json").write_text(
        json.dumps({"memory_stats": {"active_memory": 10}, "metadata": {}})
    )
    snap = MemorySnapshotJson().build(load_reports(tmp_path))
    assert snap["summary"] == {"active_memory_bytes": 10}
    assert snap["memory_hierarchy"] == {}
    assert "lifetime" in snap["metadata"]["problems"]


def test_write_reports_writes_all_five(tmp_path):
    write_sample_reports(tmp_path / "in", n_vars=5)
    written = write_reports(tmp_path / "in", tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == [
        "dashboard.html",
        "flamegraph.svg",
        "lifecycle_timeline.svg",
        "memory_analysis.svg",
        "memory_snapshot.json",
    ]
    assert written.problems == {}
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left
    only = write_reports(tmp_path / "in", tmp_path / "one", only=["memory_snapshot.json"])
    assert [p.name for p in only] == ["memory_snapshot.json"]
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["memory_snapshot.json"]


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "memscope", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_report_verb_from_a_directory(tmp_path):
    write_sample_reports(tmp_path, n_vars=5)
    (tmp_path / "snapshot_security_violations.json").unlink()
    out = run_cli("report", tmp_path, "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    assert "warning: security_violations" in out.stderr
    assert (tmp_path / "out" / "dashboard.html").exists()


def test_report_verb_errors_are_one_line(tmp_path):
    out = run_cli("report", tmp_path / "nope")
    assert out.returncode == 2 and "no such file" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("report", tmp_path)
    assert out.returncode == 2 and "no *_memory_analysis.json" in out.stderr


def test_report_verb_from_a_log_runs_the_analyzers_first(tmp_path):
    from memscope.analyzers.log_builder import sample_log
    from memscope.eventlog.log import LogWriter

    writer = LogWriter(tmp_path / "run" / "events")
    for name, table in sample_log().tables().items():
        if table.num_rows:
            writer.append(name, table)
    writer.close()
    out = run_cli("report", tmp_path / "run" / "events", "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {
        "dashboard.html",
        "memory_analysis.svg",
        "lifecycle_timeline.svg",
        "memory_snapshot.json",
        "snapshot_memory_analysis.json",
    } <= names
    # the numbers come from the log: the snapshot agrees with the analyzers' file
    snap = json.loads((tmp_path / "out" / "memory_snapshot.json").read_text())
    mem = json.loads((tmp_path / "out" / "snapshot_memory_analysis.json").read_text())
    assert snap["summary"]["peak_memory_bytes"] == mem["memory_stats"]["peak_memory"] > 0


def test_dashboard_verb_writes_the_file(tmp_path):
    write_sample_reports(tmp_path, n_vars=5)
    out = run_cli("dashboard", tmp_path, "--output", tmp_path / "d.html")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d.html").read_text().startswith("<!DOCTYPE html>")


def test_dashboard_script_never_writes_html():
    from importlib import resources

    script = (resources.files("memscope.exporters") / "templates" / "dashboard.js").read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in script, sink
