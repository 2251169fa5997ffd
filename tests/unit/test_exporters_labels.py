"""Labels the reports give to what the analyzers found (no Python frame, ...)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from memscope.exporters import load_reports
from memscope.exporters.dashboard_html import DashboardHtml
from memscope.exporters.extract import NO_FRAME
from memscope.exporters.memory_svg import MemoryAnalysisSvg

SAMPLE = Path(__file__).parents[1] / "data" / "analysis_sample"


def frameless_sample(tmp_path: Path) -> Path:
    """The analyzers' sample where the top sites include stack 0 (no location)."""
    for path in SAMPLE.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    mem_path = tmp_path / "snapshot_memory_analysis.json"
    mem = json.loads(mem_path.read_text())
    mem["top_allocation_sites"].insert(
        0, {"pid": 100, "stack_id": 0, "allocations": 5, "bytes_allocated": 9_000_000, "trace": []}
    )
    mem["largest_live_allocations"].insert(
        0,
        {
            "pid": 100,
            "tid": 1,
            "size_bytes": 9_000_000,
            "allocation_time_ns": 5000,
            "address": 4096,
            "stack_id": 0,
        },
    )
    mem_path.write_text(json.dumps(mem))
    perf_path = tmp_path / "snapshot_performance.json"
    perf = json.loads(perf_path.read_text())
    perf["hottest_sites"]["by_bytes"].insert(
        0, {"pid": 100, "stack_id": 0, "allocations": 5, "bytes_allocated": 9_000_000}
    )
    perf_path.write_text(json.dumps(perf))
    return tmp_path


def test_no_python_frame_is_named_in_the_svg_and_the_dashboard(tmp_path):
    reports = load_reports(frameless_sample(tmp_path))
    exp = MemoryAnalysisSvg()
    buf = io.BytesIO()
    exp.render(exp.build(reports), buf)
    svg = buf.getvalue().decode()
    assert "&lt;no Python frame&gt;" in svg
    assert "stack 0" not in svg
    model = json.dumps(DashboardHtml().build(reports))
    assert json.dumps(NO_FRAME)[1:-1] in model
    assert "stack 0" not in model


def test_name_list_keeps_whole_names_and_counts_the_rest():
    from memscope.exporters.charts import name_list

    assert name_list(["a", "b"], 40) == "a, b"
    assert name_list(["chunk", "chunk", "cache", "users", "names"], 22) == "chunk, chunk +3 more"
    assert name_list(["x" * 50, "y"], 20).endswith(" +1 more")


def test_scope_rows_name_their_thread():
    from memscope.exporters.extract import scopes

    life = {
        "lifecycle_events": [{"pid": 1, "tid": 77, "thread_name": "worker-1"}],
        "scope_analysis": {
            "scopes": [
                {"pid": 1, "tid": 77, "name": "work"},
                {"pid": 1, "tid": 78, "name": "other"},
            ]
        },
    }
    rows = scopes(life, 0)
    assert [r["tid"] for r in rows] == ["worker-1", "78"]
