"""The FFI analyzer's native-mode parts over hand-built logs (no process is started)."""

from __future__ import annotations

import json

from memscope.analyzers.log_builder import LogBuilder, run_analyzer
from memscope.protocol.wire import DOMAIN_NATIVE

PID = 10
LIBFOO = "/usr/lib/libfoo.so.1"
LIBFFI = "/lib/x86_64-linux-gnu/libffi.so.8"


def _log() -> LogBuilder:
    b = LogBuilder()
    b.process(pid=PID, ts_ns=0, argv=["app.py"])
    leak_site = b.stack(
        PID, [("<module>", "app.py", 1), ("main", "app.py", 3), ("foo_alloc", LIBFOO, 0)]
    )
    b.alloc(PID, ts_ns=10, address=0x1000, size=4096, domain=DOMAIN_NATIVE, stack_id=leak_site)
    b.alloc(PID, ts_ns=11, address=0x2000, size=100, domain=DOMAIN_NATIVE, stack_id=leak_site)
    b.free(PID, ts_ns=12, address=0x2000, domain=DOMAIN_NATIVE)
    # a double free the shim blocked: alloc, free, free (the second one also an ffi row)
    df_site = b.stack(
        PID, [("<module>", "app.py", 1), ("main", "app.py", 5), ("foo_free_twice", LIBFOO, 0)]
    )
    b.alloc(PID, ts_ns=20, address=0x3000, size=64, domain=DOMAIN_NATIVE, stack_id=df_site)
    b.free(PID, ts_ns=21, address=0x3000, domain=DOMAIN_NATIVE)
    b.free(PID, ts_ns=22, address=0x3000, domain=DOMAIN_NATIVE)
    b.ffi(
        PID,
        22,
        "native.double_free",
        json.dumps(
            {"address": "0x3000", "blocked": True, "caller": "foo_free_twice", "library": LIBFOO}
        ),
        stack_id=df_site,
    )
    # two ctypes calls on thread 1 and what was allocated during each
    call1 = b.stack(PID, [("<module>", "app.py", 1), ("main", "app.py", 7)])
    inside1 = b.stack(
        PID, [("<module>", "app.py", 1), ("main", "app.py", 7), ("0x6f7a", LIBFFI, 0)]
    )
    b.ffi(PID, 100, "ctypes.call_function", json.dumps({"func_pointer": 1}), stack_id=call1)
    b.alloc(PID, ts_ns=105, address=0x4000, size=77, domain=DOMAIN_NATIVE, stack_id=inside1)
    b.alloc(
        PID, ts_ns=106, address=0x5000, size=999, domain=DOMAIN_NATIVE, stack_id=inside1, tid=2
    )  # another thread's call from the same site
    b.ffi(PID, 104, "ctypes.call_function", json.dumps({"func_pointer": 1}), stack_id=call1, tid=2)
    call2 = b.stack(PID, [("<module>", "app.py", 1), ("main", "app.py", 8)])
    inside2 = b.stack(
        PID, [("<module>", "app.py", 1), ("main", "app.py", 8), ("foo_alloc", LIBFOO, 0)]
    )
    b.ffi(PID, 200, "ctypes.call_function", json.dumps({"func_pointer": 2}), stack_id=call2)
    b.alloc(PID, ts_ns=210, address=0x6000, size=5, domain=DOMAIN_NATIVE, stack_id=inside2)
    b.free(PID, ts_ns=220, address=0x6000, domain=DOMAIN_NATIVE)
    return b


def test_native_leak_names_library_caller_and_python_site():
    report = run_analyzer(_log(), "ffi")
    (leak,) = [lk for lk in report["native_leaks"] if lk["bytes"] == 4096]
    assert leak["blocks"] == 1
    assert leak["library"] == "libfoo.so.1"
    assert leak["native_caller"] == f"foo_alloc ({LIBFOO})"
    assert (leak["python_site"], leak["python_line"]) == ("main (app.py:3)", 3)


def test_blocked_double_free_is_a_finding_and_a_risk():
    report = run_analyzer(_log(), "ffi")
    findings = report["native_findings"]
    assert findings["by_kind"] == {"double_free": 1}
    (item,) = findings["items"]
    assert (item["address"], item["blocked"], item["python_line"]) == ("0x3000", True, 5)
    assert item["library"] == "libfoo.so.1"
    risk = next(r for r in report["risks"] if r["kind"] == "native_double_free")
    assert (risk["severity"], risk["count"]) == ("high", 1)


def test_ctypes_call_sites_hold_the_blocks_allocated_under_them():
    report = run_analyzer(_log(), "ffi")
    first, second = report["ctypes_calls"]
    assert (first["calls"], first["tids"], first["first_ts_ns"]) == (2, [1, 2], 100)
    assert (first["blocks"], first["bytes"], first["live_bytes"]) == (2, 77 + 999, 77 + 999)
    assert first["by_library"] == {
        "libffi.so.8 (a direct ctypes/cffi call)": {
            "blocks": 2,
            "bytes": 77 + 999,
            "live_blocks": 2,
            "live_bytes": 77 + 999,
        }
    }
    assert second["calls"] == 1
    assert (second["blocks"], second["bytes"], second["live_blocks"]) == (1, 5, 0)
    assert list(second["by_library"]) == ["libfoo.so.1"]
    assert (first["python_line"], second["python_line"]) == (7, 8)


def test_no_native_rows_give_empty_native_sections():
    b = LogBuilder()
    b.process(pid=PID, ts_ns=0, argv=["app.py"])
    site = b.stack(PID, [("main", "app.py", 3)])
    b.alloc(PID, ts_ns=1, address=0x10, size=8, stack_id=site)
    report = run_analyzer(b, "ffi")
    assert report["native_findings"] == {"by_kind": {}, "items": []}
    assert report["ctypes_calls"] == []
