"""The committed sample of the six files (tests/data/analysis_sample/) never goes stale.

Regenerate it with ``MEMSCOPE_UPDATE_SAMPLE=1 pytest tests/unit/test_analyzers_sample.py``.
"""

import json
import os
from pathlib import Path

import jsonschema
import pytest

from memscope.analyzers import ANALYZERS
from memscope.analyzers.common import load_schema
from memscope.analyzers.log_builder import write_sample

SAMPLE = Path(__file__).parents[1] / "data" / "analysis_sample"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    write_sample(out)
    if os.environ.get("MEMSCOPE_UPDATE_SAMPLE") == "1":
        SAMPLE.mkdir(parents=True, exist_ok=True)
        write_sample(SAMPLE)
    return out


@pytest.mark.parametrize("kind", list(ANALYZERS))
def test_sample_matches_a_fresh_run(regenerated, kind):
    name = ANALYZERS[kind].file_name()
    fresh = (regenerated / name).read_text()
    committed = (SAMPLE / name).read_text()
    assert fresh == committed, f"{name} is stale: MEMSCOPE_UPDATE_SAMPLE=1 pytest {__file__}"


@pytest.mark.parametrize("kind", list(ANALYZERS))
def test_sample_is_valid_against_its_schema(kind):
    analyzer = ANALYZERS[kind]
    schema = load_schema(analyzer.file_kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    report = json.loads((SAMPLE / analyzer.file_name()).read_text())
    jsonschema.validate(report, schema)
    assert report["metadata"]["analyzer"] == analyzer.file_kind
