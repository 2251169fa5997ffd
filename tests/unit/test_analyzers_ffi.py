"""unsafe_ffi: native sources, boundary events, native leaks, risks."""

from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.log_builder import run_analyzer as analyze
from memscope.protocol.wire import DOMAIN_MEM, DOMAIN_NUMPY, DOMAIN_RAW


def _log():
    b = LogBuilder()
    ct = b.stack(
        1,
        [
            ("main", "app.py", 1),
            ("create_string_buffer", "/usr/lib/python3.11/ctypes/__init__.py", 60),
        ],
    )
    b.alloc(1, 10, 0x100, 1_000, domain=DOMAIN_RAW)
    b.free(1, 20, 0x100, domain=DOMAIN_RAW)
    b.alloc(1, 30, 0x200, 8_000, domain=DOMAIN_NUMPY)  # alive at the end
    b.alloc(1, 40, 0x300, 64, domain=DOMAIN_MEM, stack_id=ct)  # a ctypes buffer
    b.ffi(1, 5, "ctypes.dlopen", '{"name": "libm.so.6"}')
    b.ffi(1, 6, "ctypes.call_function", '{"func_pointer": 1}')
    b.ffi(1, 7, "ctypes.call_function", "not json")
    b.ffi(1, 8, "ctypes.string_at", '{"address": 1, "size": 4}')
    return b


def test_native_sources():
    sources = {s["source"]: s for s in analyze(_log(), "ffi")["native_allocations"]}
    assert (sources["raw"]["blocks"], sources["raw"]["bytes"], sources["raw"]["live_bytes"]) == (
        1,
        1_000,
        0,
    )
    assert sources["numpy"]["live_bytes"] == 8_000
    assert sources["ctypes/cffi"]["bytes"] == 64


def test_boundary_events_and_libraries():
    boundary = analyze(_log(), "ffi")["boundary_events"]
    assert {e["event"]: e["count"] for e in boundary["by_event"]} == {
        "ctypes.call_function": 2,
        "ctypes.dlopen": 1,
        "ctypes.string_at": 1,
    }
    assert boundary["libraries"] == ["libm.so.6"]
    details = [e["details"] for e in boundary["events"]]
    assert details[0] == {"name": "libm.so.6"} and "not json" in details


def test_native_leaks_and_risks():
    report = analyze(_log(), "ffi")
    (leak,) = report["native_leaks"]
    assert (leak["domain"], leak["bytes"]) == ("numpy", 8_000)
    kinds = {r["kind"]: r for r in report["risks"]}
    assert kinds["raw_memory_read"]["count"] == 1
    assert kinds["native_alive_at_end"]["bytes"] == 8_000
    assert kinds["foreign_call"]["count"] == 2


def test_an_empty_log_has_no_risks():
    report = analyze(LogBuilder(), "ffi")
    assert report["risks"] == [] and report["native_allocations"] == []
