"""lifetime: known lifetimes, scopes, aliases and containment."""

from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.log_builder import run_analyzer as analyze


def _log():
    b = LogBuilder()
    b.alloc(1, 100, 0x100, 64)
    inner = b.variable(1, 110, "ids", "list[int]", 0x200, 88, scope="load", scope_id=5)
    b.variable(
        1,
        120,
        "users",
        "dict[str, list[int]]",
        0x100,
        64,
        deep_size=300,
        scope="load",
        scope_id=5,
        contains=[inner],
    )
    b.variable(1, 130, "same_users", "dict[str, list[int]]", 0x100, 64, scope="main")
    b.free(1, 1_120, 0x100)
    b.scope(1, 5, "load", 105, 2_000)
    return b


def test_a_variable_with_a_known_lifetime():
    events = {e["name"]: e for e in analyze(_log(), "lifecycle")["lifecycle_events"]}
    users = events["users"]
    assert users["created_ts_ns"] == 120 and users["died_ts_ns"] == 1_120
    assert users["lifetime_ns"] == 1_000 and users["alive_at_end"] is False
    assert users["events"] == [
        {"event": "tracked", "ts_ns": 120},
        {"event": "freed", "ts_ns": 1_120},
    ]
    assert events["ids"]["alive_at_end"] is True and "died_ts_ns" not in events["ids"]


def test_aliases_are_one_object_under_several_names():
    (alias,) = analyze(_log(), "lifecycle")["aliases"]
    assert alias["names"] == ["same_users", "users"]
    assert alias["died_ts_ns"] == 1_120


def test_containment_pairs_name_both_sides():
    (pair,) = analyze(_log(), "lifecycle")["containment"]
    assert (pair["container_name"], pair["contained_name"]) == ("users", "ids")


def test_scope_totals_and_duration():
    scopes = analyze(_log(), "lifecycle")["scope_analysis"]
    load = next(s for s in scopes["scopes"] if s["name"] == "load")
    assert load["variable_count"] == 2 and load["total_size_bytes"] == 152
    assert load["duration_ns"] == 1_895
    totals = {t["name"]: t for t in scopes["scope_totals"]}
    assert totals["load"]["occurrences"] == 1 and totals["main"]["variable_count"] == 1


def test_summary_counts():
    summary = analyze(_log(), "lifecycle")["summary"]
    assert summary == {
        "tracked_variables": 3,
        "died": 2,
        "alive_at_end": 1,
        "min_lifetime_ns": 990,
        "median_lifetime_ns": 995.0,
        "max_lifetime_ns": 1_000,
    }
