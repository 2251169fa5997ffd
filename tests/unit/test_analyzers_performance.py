"""performance: the size histogram, peak attribution, temporaries, tracer cost."""

import math

from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.log_builder import run_analyzer as analyze


def test_a_known_size_histogram():
    b = LogBuilder()
    sizes = [1, 64, 65, 256, 257, 1024, 1025, 4096, 4097, 16384, 16385, 10**6]
    for i, size in enumerate(sizes):
        b.alloc(1, i, 0x1000 * (i + 1), size)
    hist = {
        h["bucket"]: (h["count"], h["bytes"])
        for h in analyze(b, "performance")["allocation_distribution"]
    }
    assert hist == {
        "tiny": (2, 65),
        "small": (2, 321),
        "medium": (2, 1281),
        "large": (2, 5121),
        "huge": (2, 20481),
        "massive": (2, 16385 + 10**6),
    }


def test_a_known_peak_and_who_held_it():
    b = LogBuilder()
    big = b.stack(1, [("main", "app.py", 1), ("load", "app.py", 5)])
    small = b.stack(1, [("main", "app.py", 1), ("parse", "app.py", 9)])
    b.alloc(1, 10, 0x100, 700, stack_id=big)
    b.alloc(1, 20, 0x200, 200, stack_id=small)
    b.alloc(1, 30, 0x300, 100, stack_id=small)  # the peak: 1000 bytes at ts 30
    b.free(1, 40, 0x100)
    b.alloc(1, 50, 0x400, 600, stack_id=big)  # 900 bytes: below the peak
    peak = analyze(b, "performance")["peak_attribution"]
    assert (peak["peak_memory"], peak["peak_ts_ns"]) == (1000, 30)
    holders = [
        (h["stack_id"], h["blocks"], h["bytes"], h["percentage_of_peak"]) for h in peak["holders"]
    ]
    assert holders == [(big, 1, 700, 70.0), (small, 2, 300, 30.0)]


def test_temporary_allocations_and_rates():
    b = LogBuilder()
    for i in range(5):
        b.alloc(1, i * 1_000_000_000, 0x100, 10)
        b.free(1, i * 1_000_000_000 + 100, 0x100)
    b.alloc(1, 10, 0x900, 99)
    b.free(1, 2_000_000_010, 0x900)  # two seconds: not temporary
    report = analyze(b, "performance", temporary_ns=1_000)
    temp = report["temporary_allocations"]
    assert (temp["count"], temp["bytes"]) == (5, 50)
    rates = report["rates_over_time"]
    assert sum(p["allocations"] for p in rates["points"]) == 6
    assert sum(p["frees"] for p in rates["points"]) == 6


def test_hottest_sites_by_count_and_bytes():
    b = LogBuilder()
    many = b.stack(1, [("many", "a.py", 1)])
    big = b.stack(1, [("big", "a.py", 2)])
    for i in range(3):
        b.alloc(1, i, 0x100 + i * 16, 8, stack_id=many)
    b.alloc(1, 9, 0x900, 5000, stack_id=big)
    hot = analyze(b, "performance")["hottest_sites"]
    assert [s["location"] for s in hot["by_count"]] == ["many (a.py:1)", "big (a.py:2)"]
    assert [s["location"] for s in hot["by_bytes"]] == ["big (a.py:2)", "many (a.py:1)"]


def test_tracer_cost_is_copied_from_the_counters():
    b = LogBuilder()
    b.producer_stats(
        1, 10, events=100, bytes=800, drops=0, buffer_high_water=7, batches=2, spooled=0
    )
    b.producer_stats(
        1, 20, events=300, bytes=2_400, drops=5, buffer_high_water=9, batches=4, spooled=1
    )
    b.ingest("h:1:0", 1, 25, batches=4, events=300, gaps=1)
    cost = analyze(b, "performance")["tracer_cost"]
    (producer,) = cost["producers"]
    assert (
        producer["events"],
        producer["bytes"],
        producer["drops"],
        producer["buffer_high_water"],
        producer["bytes_per_event"],
    ) == (300, 2_400, 5, 9, 8.0)
    assert cost["ingest"] == [
        {
            "producer": "h:1:0",
            "pid": 1,
            "batches": 4,
            "events": 300,
            "gaps": 1,
            "duplicates": 0,
            "rejected": 0,
        }
    ]
    assert cost["totals"]["drops"] == 5


def test_per_thread_names_and_counts():
    b = LogBuilder()
    b.thread(1, 2, 0, "worker")
    b.alloc(1, 1, 0x100, 10, tid=2)
    b.alloc(1, 2, 0x200, 20, tid=3)
    threads = analyze(b, "performance")["per_thread"]
    assert [(t["tid"], t.get("thread_name"), t["bytes_allocated"]) for t in threads] == [
        (2, "worker", 10),
        (3, None, 20),
    ]


def test_a_sampled_process_s_counts_are_labelled_samples_with_estimates():
    b = LogBuilder()
    b.process(1, 0, mode="sampled", sample_bytes=1000)
    b.alloc(1, 10, 0x100, 1000)
    b.alloc(1, 20, 0x200, 100_000)
    report = analyze(b, "performance")
    (proc,) = report["per_process"]
    assert proc["allocations"] == 2 and proc["figures_are"] == "samples"
    assert proc["estimated"]["allocations"] == round(1 / (1 - math.exp(-1)) + 1)
    assert report["metadata"]["sampled"] == {"1": {"sample_bytes": 1000, "figures_are": "samples"}}
