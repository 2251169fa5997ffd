"""Wrong shapes in the analysis files never crash an exporter: panels just lose that data."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from memscope.exporters import EXPORTERS, exporter, load_reports

SAMPLE = Path(__file__).parents[1] / "data" / "analysis_sample"


def mutate(value, how):
    if isinstance(value, dict):
        if how == "dicts-to-lists":
            return []
        return {k: mutate(v, how) for k, v in value.items()}
    if isinstance(value, list):
        if how == "lists-to-numbers":
            return 7
        return [mutate(v, how) for v in value]
    if isinstance(value, str):
        return 12345 if how == "strings-to-numbers" else value
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return {"numbers-to-strings": "x", "numbers-negative": -value, "numbers-huge": 1e308}.get(
            how, value
        )
    return value


def assert_parses(filename: str, data: bytes) -> None:
    """The output is a complete, well-formed file of its kind with real content."""
    assert data, filename
    if filename.endswith(".svg"):
        root = ET.fromstring(data)
        assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
        shown = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
        assert any("memscope" in t for t in shown), "an SVG without its title"
    elif filename.endswith(".json"):
        doc = json.loads(data, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
        assert isinstance(doc, dict) and doc, filename
    else:
        text = data.decode("utf-8")
        assert text.lstrip().lower().startswith("<!doctype html") and "</html>" in text
        for name in ("memscope-config", "memscope-data"):
            found = re.search(
                f'<script type="application/json" id="{name}">(.*?)</script>', text, re.S
            )
            assert found, name
            assert json.loads(found.group(1)), name
        model = json.loads(re.search(r'id="memscope-data">(.*?)</script>', text, re.S).group(1))
        assert model["panels"], "a dashboard with no panels"


HOWS = ["lists-to-numbers", "strings-to-numbers", "numbers-to-strings", "numbers-huge"]


@pytest.mark.parametrize("how", HOWS)
def test_every_exporter_survives_wrong_shapes(tmp_path, how):
    for path in SAMPLE.glob("*.json"):
        data = json.loads(path.read_text())
        keep = {"metadata"} if how != "strings-to-numbers" else set()
        mutated = {k: (v if k in keep else mutate(v, how)) for k, v in data.items()}
        (tmp_path / path.name).write_text(json.dumps(mutated))
    reports = load_reports(tmp_path)
    for module, cls in EXPORTERS:
        exp = exporter(module, cls)
        buf = io.BytesIO()
        exp.render(exp.build(reports), buf)
        assert_parses(exp.filename, buf.getvalue())


def test_top_level_dicts_replaced_by_lists(tmp_path):
    for path in SAMPLE.glob("*.json"):
        data = json.loads(path.read_text())
        (tmp_path / path.name).write_text(json.dumps({k: [] for k in data}))
    reports = load_reports(tmp_path)
    for module, cls in EXPORTERS:
        exp = exporter(module, cls)
        buf = io.BytesIO()
        exp.render(exp.build(reports), buf)
        assert_parses(exp.filename, buf.getvalue())
