"""complex_types: parsing, the complexity score, evidence-backed suggestions."""

import pytest

from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.log_builder import run_analyzer as analyze
from memscope.analyzers.type_names import complexity_score, parse


@pytest.mark.parametrize(
    "name,depth,params",
    [
        ("int", 0, 0),
        ("list[int]", 1, 1),
        ("dict[str, list[int]]", 2, 3),
        ("numpy.ndarray[float64]", 1, 1),
        ("dict[str, dict[str, list[int]]]", 3, 5),
    ],
)
def test_parse_depth_and_parameters(name, depth, params):
    shape = parse(name)
    assert (shape.depth, shape.parameter_count) == (depth, params)


def test_unbalanced_names_are_taken_whole():
    assert parse("list[int").name == "list[int"
    assert parse("list[int").depth == 0


def test_the_documented_score():
    assert complexity_score(parse("int"), 28, 28) == 0
    assert complexity_score(parse("list[int]"), 100, 200) == 4.0
    assert complexity_score(parse("dict[str, list[int]]"), 100, 800) == 4 + 3 + 3


def test_counts_sizes_and_suggestions():
    b = LogBuilder()
    for i in range(12):
        b.variable(1, i, f"u{i}", "app.User", 0x100 + i * 64, 48, deep_size=300)
    b.variable(1, 50, "xs", "list[float]", 0x9000, 8_056, deep_size=80_056)
    b.variable(1, 51, "few", "app.Point", 0x9100, 48)
    report = analyze(b, "complex_types", slots_min_instances=10, homogeneous_min_bytes=64 * 1024)
    types = {t["type_name"]: t for t in report["complex_type_analysis"]}
    user = types["app.User"]
    assert (user["instance_count"], user["total_size_bytes"], user["total_deep_size_bytes"]) == (
        12,
        576,
        3_600,
    )
    assert [s["kind"] for s in user["suggestions"]] == ["slots"]
    assert user["suggestions"][0]["evidence"]["instance_count"] == 12
    assert [s["kind"] for s in types["list[float]"]["suggestions"]] == ["homogeneous_array"]
    assert types["app.Point"]["suggestions"] == []
    assert report["summary"]["type_count"] == 3


def test_no_suggestion_below_the_thresholds():
    b = LogBuilder()
    b.variable(1, 50, "xs", "list[float]", 0x9000, 8_056, deep_size=10_000)
    report = analyze(b, "complex_types")
    assert report["complex_type_analysis"][0]["suggestions"] == []
