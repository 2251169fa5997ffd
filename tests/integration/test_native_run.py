"""`memscope run --native` end to end: ctypes leaks, a C library's double/invalid frees and
leak, ctypes call links, a shell child, fork and spawn children -- one traced run."""

from __future__ import annotations

import json

import pytest
from native_util import build_c_library, memscope_run

from memscope.analyzers.views import connect
from memscope.eventlog.log import open_log

PROGRAM = """\
import _ctypes
import ctypes
import ctypes.util
import multiprocessing
import os
import subprocess
import sys

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
mstest = ctypes.CDLL(sys.argv[1])
mstest.ms_test_leak.restype = ctypes.c_void_p
mstest.ms_test_leak.argtypes = [ctypes.c_size_t]


def leak():
    return [libc.malloc(4096) for _ in range(3)]  # LINE_CTYPES_LEAK


def balanced():
    for _ in range(10):
        libc.free(libc.malloc(1000))  # LINE_BALANCED


def child_leak(size):
    libc.malloc(size)  # LINE_CHILD_LEAK


def main():
    kept = leak()
    balanced()
    mstest.ms_test_leak(5555)  # LINE_C_LEAK
    mstest.ms_test_double_free()  # LINE_DOUBLE_FREE
    mstest.ms_test_invalid_free()  # LINE_INVALID_FREE
    address = ctypes.cast(libc.malloc, ctypes.c_void_p).value
    _ctypes.call_function(address, (2222,))  # LINE_CALL_FUNCTION
    subprocess.run(["sh", "-c", "true"], check=True)
    pid = os.fork()
    if pid == 0:
        child_leak(2000)
        sys.exit(0)
    os.waitpid(pid, 0)
    spawned = multiprocessing.get_context("spawn").Process(target=child_leak, args=(3000,))
    spawned.start()
    spawned.join()
    print("survived", len(kept), spawned.exitcode)


if __name__ == "__main__":
    main()
"""


def _line(marker: str) -> int:
    return next(i for i, text in enumerate(PROGRAM.splitlines(), 1) if marker in text)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("native_run")
    library = build_c_library(tmp)
    proc, out = memscope_run(tmp, PROGRAM, str(library))
    assert proc.returncode == 0, proc.stderr[-4000:]
    ffi = json.loads((out / "snapshot_unsafe_ffi.json").read_text())
    security = json.loads((out / "snapshot_security_violations.json").read_text())
    con = connect(open_log(out))
    yield {"proc": proc, "out": out, "ffi": ffi, "security": security, "con": con}
    con.close()


def _main_pid(con) -> int:
    (pid,) = con.execute(
        "SELECT pid FROM processes WHERE list_contains(argv, 'prog.py') "
        "OR argv[1] LIKE '%prog.py' ORDER BY start_ts_ns LIMIT 1"
    ).fetchone()
    return pid


def _leaks_at(ffi, line, pid=None):
    return [
        leak
        for leak in ffi["native_leaks"]
        if leak.get("python_line") == line
        and leak.get("python_file", "").endswith("prog.py")
        and (pid is None or leak["pid"] == pid)
    ]


def test_program_survives_and_its_output_is_unchanged(run):
    assert run["proc"].stdout.strip().splitlines()[-1] == "survived 3 0"


def test_ctypes_leak_is_reported_exactly_with_its_python_line(run):
    (leak,) = _leaks_at(run["ffi"], _line("LINE_CTYPES_LEAK"))
    assert (leak["domain"], leak["blocks"], leak["bytes"]) == ("native", 3, 3 * 4096)
    assert leak["library"].startswith("libffi")  # malloc was called straight from ctypes
    # the freed blocks are not leaks, but were seen: 10 allocations and 10 frees
    assert _leaks_at(run["ffi"], _line("LINE_BALANCED")) == []
    con = run["con"]
    seen = con.execute(
        """SELECT count(*), count(free_ts_ns) FROM allocations a
        WHERE domain = 'native' AND size = 1000 AND pid = ?""",
        [_main_pid(con)],
    ).fetchone()
    assert seen == (10, 10)


def test_c_library_leak_double_free_and_invalid_free(run):
    (leak,) = _leaks_at(run["ffi"], _line("LINE_C_LEAK"))
    assert (leak["blocks"], leak["bytes"], leak["library"]) == (1, 5555, "libmstest.so")
    assert leak["native_caller"].startswith("ms_test_leak ")
    findings = run["ffi"]["native_findings"]
    assert findings["by_kind"] == {"double_free": 1, "invalid_free": 1}
    by_kind = {item["kind"]: item for item in findings["items"]}
    assert by_kind["double_free"]["python_line"] == _line("LINE_DOUBLE_FREE")
    assert by_kind["double_free"]["library"] == "libmstest.so"
    assert by_kind["double_free"]["native_caller"].startswith("ms_test_double_free ")
    assert by_kind["invalid_free"]["python_line"] == _line("LINE_INVALID_FREE")
    assert by_kind["double_free"]["blocked"] is True
    kinds = {risk["kind"] for risk in run["ffi"]["risks"]}
    assert {"native_double_free", "native_invalid_free"} <= kinds
    # the security analyzer sees the double free in the events too (alloc, free, free)
    doubles = [v for v in run["security"]["violation_reports"] if v["kind"] == "double_free"]
    assert any(v["address"] == int(by_kind["double_free"]["address"], 16) for v in doubles)


def test_ctypes_call_event_is_linked_to_the_allocation_it_made(run):
    calls = run["ffi"]["ctypes_calls"]
    (call,) = [c for c in calls if c.get("python_line") == _line("LINE_CALL_FUNCTION")]
    # malloc called straight through libffi: exactly the 2222-byte block, still alive
    (direct,) = [
        part for library, part in call["by_library"].items() if library.startswith("libffi")
    ]
    assert direct == {"blocks": 1, "bytes": 2222, "live_blocks": 1, "live_bytes": 2222}
    assert call["bytes"] == sum(p["bytes"] for p in call["by_library"].values())


def test_fork_and_spawn_children_are_traced_natively(run):
    con = run["con"]
    parent = _main_pid(con)
    children = dict(
        con.execute("SELECT pid, ppid FROM processes WHERE ppid = ?", [parent]).fetchall()
    )
    # straight from the log (the report lists only the largest leak sites)
    found = con.execute(
        """SELECT a.pid, a.size, f.lineno FROM allocations a JOIN frames f USING (pid, stack_id)
        WHERE a.domain = 'native' AND a.free_ts_ns IS NULL AND a.size IN (2000, 3000)
          AND f.depth = 1 AND f.filename LIKE '%prog.py' ORDER BY a.size"""
    ).fetchall()
    assert [(size, line) for _, size, line in found] == [
        (2000, _line("LINE_CHILD_LEAK")),
        (3000, _line("LINE_CHILD_LEAK")),
    ]
    assert {pid for pid, _, _ in found} <= set(children)
    assert parent not in {pid for pid, _, _ in found}
