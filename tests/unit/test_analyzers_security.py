"""security_violations: double frees, domain mismatches, leaks, oversized blocks."""

from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.log_builder import run_analyzer as analyze
from memscope.protocol.wire import DOMAIN_MEM, DOMAIN_OBJ


def _findings(report, kind):
    return [f for f in report["violation_reports"] if f["kind"] == kind]


def test_a_double_free_with_its_stack_and_allocation():
    b = LogBuilder()
    b.process(1, 0)
    alloc_site = b.stack(1, [("main", "app.py", 1), ("make", "ext.py", 3)])
    free_site = b.stack(1, [("main", "app.py", 1), ("release", "ext.py", 9)])
    b.alloc(1, 10, 0xD00, 64, stack_id=alloc_site)
    b.free(1, 20, 0xD00, stack_id=free_site)
    b.free(1, 30, 0xD00, stack_id=free_site)
    b.alloc(1, 40, 0xD00, 8)  # reuse after that is fine
    b.free(1, 50, 0xD00)
    report = analyze(b, "security")
    (finding,) = _findings(report, "double_free")
    assert finding["severity"] == "critical" and finding["ts_ns"] == 30
    assert finding["confidence"] == "high"
    assert finding["stack"]["trace"] == ["release (ext.py:9)", "main (app.py:1)"]
    alloc, first_free = finding["related_allocations"]
    assert (alloc["role"], alloc["ts_ns"], alloc["size"]) == ("allocation", 10, 64)
    assert alloc["stack"]["location"] == "make (ext.py:3)"
    assert (first_free["role"], first_free["ts_ns"]) == ("first_free", 20)
    assert report["summary"]["by_kind"]["double_free"] == 1


def test_no_double_free_findings_for_a_sampled_process():
    b = LogBuilder()
    b.process(1, 0, mode="sampled")
    b.alloc(1, 10, 0xD00, 64)
    b.free(1, 20, 0xD00)
    b.free(1, 30, 0xD00)
    assert _findings(analyze(b, "security"), "double_free") == []


def test_a_free_of_an_unseen_block_is_not_a_finding_but_is_counted():
    b = LogBuilder()
    b.free(1, 5, 0x700)
    b.free(1, 6, 0x700)
    report = analyze(b, "security")
    assert report["violation_reports"] == []
    assert report["summary"]["unprovable"] == [
        {"pid": 1, "unmatched_frees": 2, "unrecorded_frees": 0}
    ]


def test_a_domain_mismatch():
    b = LogBuilder()
    b.alloc(1, 10, 0xE00, 128, domain=DOMAIN_MEM)
    b.free(1, 20, 0xE00, domain=DOMAIN_OBJ)
    (finding,) = _findings(analyze(b, "security"), "domain_mismatch")
    assert (finding["allocated_domain"], finding["freed_domain"]) == ("mem", "obj")
    assert finding["related_allocations"][0]["size"] == 128


def _leaky_log():
    b = LogBuilder()
    b.process(1, 0, exit_ts_ns=10_000)
    cache = b.stack(1, [("main", "app.py", 1), ("remember", "cache.py", 4)])
    steady = b.stack(1, [("main", "app.py", 1), ("setup", "app.py", 2)])
    churn = b.stack(1, [("main", "app.py", 1), ("tmp", "app.py", 3)])
    b.alloc(1, 1, 0x50, 4_000, stack_id=steady)  # allocated once at start, kept: not growing
    for i in range(10):
        b.alloc(1, 1_000 * i + 500, 0x1000 + i * 0x100, 256, stack_id=cache)
        b.alloc(1, 1_000 * i + 600, 0x9000, 64, stack_id=churn)
        b.free(1, 1_000 * i + 700, 0x9000, stack_id=churn)
    return b, cache


def test_a_leak_of_known_size_from_a_growing_site():
    b, cache = _leaky_log()
    report = analyze(b, "security")
    (leak,) = _findings(report, "leak")
    assert leak["alive_bytes"] == 2_560 and leak["alive_blocks"] == 10
    assert leak["confidence"] == "high" and leak["process_exited"] is True
    assert leak["stack"]["stack_id"] == cache
    assert leak["live_bytes_at_checkpoints"] == sorted(leak["live_bytes_at_checkpoints"])
    assert report["summary"]["retained_at_exit"] == {"sites": 1, "blocks": 1, "bytes": 4_000}


def test_an_oversized_allocation():
    b = LogBuilder()
    b.alloc(1, 10, 0xA00, 5_000)
    b.alloc(1, 11, 0xB00, 4_999)
    (finding,) = _findings(analyze(b, "security", oversized_bytes=5_000), "oversized_allocation")
    assert finding["size"] == 5_000 and finding["threshold_bytes"] == 5_000


def test_findings_are_sorted_by_severity():
    b, _ = _leaky_log()
    site = b.stack(1, [("main", "app.py", 1), ("release", "ext.py", 9)])
    b.alloc(1, 2, 0xD00, 64, stack_id=site)
    b.free(1, 3, 0xD00, stack_id=site)
    b.free(1, 4, 0xD00, stack_id=site)
    severities = [f["severity"] for f in analyze(b, "security")["violation_reports"]]
    assert severities == ["critical", "high"]


def test_a_site_that_stops_growing_loses_confidence():
    b, _ = _leaky_log()
    b.alloc(1, 25_000, 0xF000, 1)  # the log runs on long after the cache stopped growing
    (leak,) = _findings(analyze(b, "security"), "leak")
    assert leak["confidence"] == "medium" and leak["severity"] == "medium"


def test_a_double_free_without_a_python_stack_has_low_confidence():
    b = LogBuilder()
    b.alloc(1, 10, 0xD00, 64, tid=1)
    b.free(1, 20, 0xD00, tid=1)
    b.free(1, 30, 0xD00, tid=2)  # no Python frame, another thread
    report = analyze(b, "security")
    assert _findings(report, "double_free") == []
    assert report["summary"]["unprovable_double_free_patterns"] == 1
    assert report["summary"]["by_kind"]["double_free"] == 0


def test_frees_by_the_untraced_publisher_thread_are_not_double_frees():
    """A clean pure-Python run: the tracer's ignored thread frees blocks it allocated untraced
    at addresses a traced thread used and freed before (alloc/free/free in the log)."""
    b = LogBuilder()
    b.process(1, 0)
    site = b.stack(1, [("main", "app.py", 1)])
    for i in range(300):
        address, t = 0x10000 + 64 * (i % 50), 100 * i
        b.alloc(1, t, address, 48, tid=1, stack_id=site)
        b.free(1, t + 10, address, tid=1, stack_id=site)
        b.free(1, t + 20, address, tid=99)  # the publisher's free of its own untraced block
        b.alloc(1, t + 30, address, 48, tid=1, stack_id=site)
        b.free(1, t + 40, address, tid=1, stack_id=site)
    # Another thread, even with a Python stack, may have received an untraced block.
    b.alloc(1, 90_000, 0xE00, 8, tid=1, stack_id=site)
    b.free(1, 90_010, 0xE00, tid=1, stack_id=site)
    b.free(1, 90_020, 0xE00, tid=3, stack_id=site)
    report = analyze(b, "security")
    assert report["violation_reports"] == []
    assert report["summary"]["total_violations"] == 0
    assert report["summary"]["unprovable_double_free_patterns"] == 301


def test_summary_counts_every_finding_before_the_list_is_cut(monkeypatch):
    from memscope.analyzers import security

    monkeypatch.setattr(security, "MAX_FINDINGS_PER_KIND", 2)
    b = LogBuilder()
    for i in range(5):
        b.alloc(1, 10 + i, 0xA000 + 0x10000 * i, 9_000)
    b.alloc(1, 10_000, 0xB, 1)
    for site_no in range(3):  # three sites that keep growing to the end: three leaks
        site = b.stack(1, [("main", "app.py", 1), ("grow", "c.py", site_no + 1)])
        for i in range(10):
            b.alloc(1, 1_000 * i + site_no, 0x100000 * (site_no + 1) + 64 * i, 64, stack_id=site)
    report = analyze(b, "security", oversized_bytes=5_000)
    summary = report["summary"]
    assert summary["by_kind"]["oversized_allocation"] == 5
    assert summary["by_kind"]["leak"] == 3
    assert summary["total_violations"] == 8 == sum(summary["by_severity"].values())
    assert summary["by_severity"] == {"high": 3, "medium": 5}
    assert summary["truncated"] is True and summary["kept_violations"] == 4
    assert len(report["violation_reports"]) == 4


def test_a_free_inside_a_live_block_is_invalid():
    b = LogBuilder()
    site = b.stack(1, [("main", "app.py", 1), ("bad", "ext.py", 5)])
    b.alloc(1, 10, 0x1000, 64, stack_id=site)
    b.free(1, 20, 0x1010, stack_id=site)  # 16 bytes into the live block
    b.free(1, 30, 0x5000)  # never seen, inside nothing: not provable
    b.free(1, 40, 0x1000)
    b.free(1, 50, 0x1008)  # the block is gone by now
    report = analyze(b, "security")
    (finding,) = _findings(report, "invalid_free")
    assert (finding["ts_ns"], finding["address"]) == (20, 0x1010)
    assert finding["related_allocations"][0]["address"] == 0x1000
    assert finding["stack"]["location"] == "bad (ext.py:5)"
    assert report["summary"]["invalid_free_checked"] is True


def test_interior_frees_among_reused_slots_other_domains_and_processes():
    b = LogBuilder()
    b.alloc(1, 10, 0x2000, 256)  # dead by the first interior free
    b.free(1, 15, 0x2000)
    b.alloc(1, 20, 0x2000, 64)  # the block alive at 0x2000 from then on
    b.alloc(1, 21, 0x2040, 64)  # its neighbour
    b.free(1, 30, 0x2010)  # inside the 64-byte block: invalid
    b.free(1, 31, 0x2020)  # a second one inside it: invalid
    b.free(1, 32, 0x2080)  # inside only the dead 256-byte block: not provable
    b.free(1, 33, 0x2050, domain=DOMAIN_MEM)  # inside an obj block, but freed as mem: not it
    b.alloc(2, 10, 0x2000, 4096)  # another process's block at the same address
    b.free(2, 40, 0x2100)  # inside pid 2's block: invalid
    b.free(1, 41, 0x2100)  # pid 1 has nothing there: not provable
    report = analyze(b, "security")
    found = sorted(
        (f["pid"], f["ts_ns"], f["address"], f["related_allocations"][0]["address"])
        for f in _findings(report, "invalid_free")
    )
    assert found == [(1, 30, 0x2010, 0x2000), (1, 31, 0x2020, 0x2000), (2, 40, 0x2100, 0x2000)]
