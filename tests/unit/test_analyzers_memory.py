"""memory_analysis: the eight metrics, the type hierarchy, time series, sites."""

from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.log_builder import run_analyzer as analyze
from memscope.analyzers.type_names import classify


def _log():
    b = LogBuilder()
    b.process(1, 0, exit_ts_ns=1000)
    site = b.stack(1, [("main", "app.py", 1), ("load", "app.py", 7)])
    for i, size in enumerate((10, 20, 30, 40, 400)):
        b.alloc(1, 10 + i, 0x100 * (i + 1), size, stack_id=site)
    b.free(1, 100, 0x500)  # the 400 B block
    b.variable(1, 20, "names", "list[str]", 0x100, 10, deep_size=90)
    b.variable(1, 21, "index", "dict[str, int]", 0x200, 20)
    return b


def test_eight_metrics_are_measured():
    stats = analyze(_log(), "memory")["memory_stats"]
    assert stats["active_memory"] == 100
    assert stats["peak_memory"] == 500
    assert stats["active_allocations"] == 4
    assert stats["memory_efficiency"] == 20.0
    assert stats["median_allocation_size"] == 30
    assert stats["p95_allocation_size"] == 400
    assert stats["fragmentation"] == 80.0
    assert stats["allocation_density"] == 2.5  # 5 allocations / 2 tracked variables


def test_density_is_absent_without_tracked_variables():
    b = LogBuilder()
    b.alloc(1, 1, 0x10, 8)
    stats = analyze(b, "memory")["memory_stats"]
    assert "allocation_density" not in stats
    assert stats["tracked_variables"] == 0


def test_hierarchy_groups_types_under_categories():
    hierarchy = analyze(_log(), "memory")["memory_hierarchy"]
    assert list(hierarchy) == ["Collections"]
    subs = hierarchy["Collections"]["subcategories"]
    assert subs["Lists"]["types"][0]["type_name"] == "list[str]"
    assert subs["Dicts"]["summary"]["percentage_of_total"] == round(100 * 20 / 30, 2)
    assert hierarchy["Collections"]["summary"]["total_size_bytes"] == 30


def test_classification_of_python_types():
    assert classify("dict[str, list[int]]") == ("Collections", "Dicts")
    assert classify("str") == ("Text", "Strings")
    assert classify("bool") == ("Numbers", "Integers")
    assert classify("numpy.ndarray[float64]") == ("Arrays/Buffers", "NumPy arrays")
    assert classify("builtin_function_or_method") == ("Callables", "Functions")
    assert classify("module") == ("Modules and Code", "Modules")
    assert classify("myapp.User") == ("Objects", "Instances")
    assert classify("NoneType") == ("Other", "None")


def test_memory_over_time_ends_at_the_active_memory():
    report = analyze(_log(), "memory", time_buckets=4)
    (series,) = report["memory_over_time"]
    assert series["points"][-1]["live_bytes"] == 100
    assert max(p["live_bytes"] for p in series["points"]) == 500
    assert sum(p["allocations"] for p in series["points"]) == 5


def test_top_sites_resolve_their_stack():
    (site,) = analyze(_log(), "memory")["top_allocation_sites"]
    assert site["allocations"] == 5 and site["bytes_allocated"] == 500
    assert site["live_bytes"] == 100
    assert site["trace"] == ["load (app.py:7)", "main (app.py:1)"]


def test_aggregated_mode_efficiency_comes_from_the_measured_peak():
    b = LogBuilder()
    b.process(1, 0, mode="aggregated")
    b.alloc(1, 10, 0x100, 500)
    b.aggregate(1, 20, 0, alloc_count=3, alloc_bytes=6000)
    b.producer_stats(1, 30, events=1, current_bytes=500, peak_bytes=2000)
    report = analyze(b, "memory")
    stats = report["memory_stats"]
    assert stats["peak_memory"] == 2000 and stats["peak_memory_source"] == "measured in process"
    assert stats["memory_efficiency"] == 25.0 and stats["fragmentation"] == 75.0
    (proc,) = report["processes"]
    assert proc["memory_stats"]["peak_memory"] == 2000
