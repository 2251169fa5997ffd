"""``Tracker.export_*`` (through the offline helper) builds only the file it was asked for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import memscope.analyzers
from memscope.api import offline

SAMPLE = Path(__file__).parents[1] / "data" / "analysis_sample"
KIND = {
    "memory": "memory_analysis",
    "lifecycle": "lifetime",
    "performance": "performance",
    "security": "security_violations",
    "complex_types": "complex_types",
    "ffi": "unsafe_ffi",
}


@pytest.mark.parametrize("kind", sorted(offline.EXPORT_FILES))
def test_export_of_one_report_writes_that_file_only(tmp_path, monkeypatch, kind):
    calls = []

    def fake_run_all(log, out_dir, only=None, **kwargs):
        calls.append(only)
        names = list(only) if only is not None else list(KIND)
        for name in names:
            shutil.copy(SAMPLE / f"snapshot_{KIND[name]}.json", Path(out_dir))
        return [Path(out_dir) / f"snapshot_{KIND[n]}.json" for n in names]

    monkeypatch.setattr(memscope.analyzers, "run_all", fake_run_all)
    out = tmp_path / "out" / offline.EXPORT_FILES[kind]
    assert offline._export("some-log", kind, str(out)) == [str(out)]
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    assert out.stat().st_size > 0
    # the analyzers run are those the exporter reads (all six for the dashboard)
    assert len(calls) == 1
    if kind == "html":
        assert calls[0] is None
    else:
        assert set(calls[0]) == {"memory", "lifecycle", "performance"}
