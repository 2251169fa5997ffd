"""Native mode at the capture level: the shim preloaded into a Python that drives
memscope.producer.capture directly (start/drain/decode), plus the shim on its own."""

from __future__ import annotations

import subprocess

from native_util import build_c_library, last_json, preloaded_python, shim

DRIVER = """\
import json, sys
from collections import Counter
from tracer_util import decode_all, drain, resolve_stack
from memscope.producer import capture, native_mode

def run(work, native=True):
    drain()
    capture.start("full", native=native)
    try:
        result = work()
    finally:
        capture.stop()
    chunks, rare = drain()
    return decode_all(chunks), rare, result

def libraries(ev, rare, domains=(4, 5)):
    out = Counter()
    for i in range(len(ev["kind"])):
        if int(ev["domain"][i]) in domains and int(ev["kind"][i]) != 3:
            stack = resolve_stack(rare, int(ev["stack_id"][i]))
            out[stack[0][1] if stack else "?"] += int(ev["size"][i])
    return out
"""


def test_numpy_and_zlib_native_allocations_are_visible(tmp_path):
    proc = preloaded_python(
        tmp_path,
        DRIVER
        + """
import ctypes, ctypes.util
import numpy as np
zlib = ctypes.CDLL(ctypes.util.find_library("z"))

def work():
    a = np.random.rand(200, 200)
    b = a @ a                                          # BLAS: its own buffers
    s = np.sort(np.random.rand(50_000), kind="stable")  # numpy's own sort buffer
    src = b"abc" * 50_000
    dst = ctypes.create_string_buffer(200_000)
    size = ctypes.c_ulong(len(dst))
    rc = zlib.compress2(dst, ctypes.byref(size), src, len(src), 9)  # deflate state
    return rc, float(b[0, 0]) + float(s[0])

ev, rare, (rc, _) = run(work)
libs = libraries(ev, rare)
print(json.dumps({"rc": rc, "libs": libs}))
""",
    )
    result = last_json(proc)
    assert result["rc"] == 0
    libs = result["libs"]
    zlib_bytes = sum(v for k, v in libs.items() if k.startswith("libz"))
    numpy_bytes = sum(v for k, v in libs.items() if "_multiarray_umath" in k or "openblas" in k)
    assert zlib_bytes > 200_000  # deflateInit2 allocates ~256 KiB of state for level 9
    assert numpy_bytes > 0


def test_pymem_calls_are_not_counted_twice(tmp_path):
    proc = preloaded_python(
        tmp_path,
        DRIVER
        + """
def work():
    return [bytearray(3000) for _ in range(2000)]  # PyMem_RawMalloc -> malloc

ev, rare, kept = run(work)
by_domain = Counter(int(d) for d in ev["domain"][ev["size"] >= 3000])
print(json.dumps({"domains": by_domain, "native": int((ev["domain"] == 4).sum())}))
""",
    )
    result = last_json(proc)
    # every 3 KB buffer is one event of a Python domain; none is seen again as native
    assert sum(result["domains"].values()) >= 2000
    assert "4" not in result["domains"]
    assert result["native"] < 50


def test_double_free_without_the_tracer_is_blocked_and_counted(tmp_path):
    proc = preloaded_python(
        tmp_path,
        """
import ctypes, json
from memscope.producer import native_mode
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
p = libc.malloc(48)
libc.free(p)
libc.free(p)                      # would abort in glibc: the shim blocks it
libc.free(ctypes.addressof(ctypes.c_char.from_buffer(bytearray(64))) + 8)
print(json.dumps(native_mode.stats()))
""",
    )
    stats = last_json(proc)
    assert stats["attached"] is False
    assert (stats["double_frees"], stats["invalid_frees"]) == (1, 1)
    assert stats["untracked"] == 0


def test_findings_reach_the_drain_as_ffi_rows(tmp_path):
    proc = preloaded_python(
        tmp_path,
        DRIVER
        + """
import ctypes
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def work():
    p = libc.malloc(48)
    libc.free(p)
    libc.free(p)  # the finding
    return p

ev, rare, p = run(work)
ffi = rare["ffi"]
rows = [dict(zip(ffi, values)) for values in zip(*ffi.values())]
found = [r for r in rows if r["event"] == "native.double_free"]
frees = int(((ev["address"] == p) & (ev["kind"] == 3) & (ev["domain"] == 4)).sum())
stack = resolve_stack(rare, found[0]["stack_id"]) if found else []
print(json.dumps({"found": found, "frees": frees, "stack": stack}))
""",
    )
    result = last_json(proc)
    (row,) = result["found"]
    assert '"blocked": true' in row["details"]
    assert result["frees"] == 2  # both frees are events: the analyzers see alloc, free, free
    functions = [frame[0] for frame in result["stack"]]
    assert "work" in functions and functions[0] != "work"  # a native frame, then Python


def test_late_mode_without_preload(tmp_path):
    """capture.start(native=True) in a process started without the shim: GOT patching."""
    library = build_c_library(tmp_path)
    proc = preloaded_python(
        tmp_path,
        DRIVER
        + f"""
import ctypes, os
try:
    capture.start("full", native=False)
    native_mode.attach(late=False)
except RuntimeError as exc:
    refused = "memscope run --native" in str(exc)
finally:
    capture.stop()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
early = libc.malloc(123)  # before the shim exists: unknown to it

def work():
    lib = ctypes.CDLL({str(library)!r})  # loaded after the patch: the dlopen hook patches it
    lib.ms_test_leak.restype = ctypes.c_void_p
    lib.ms_test_leak(4321)
    lib.ms_test_double_free()
    libc.free(early)  # forwarded: allocated before, not an invalid free
    pid = os.fork()
    if pid == 0:  # a child of a patched process keeps working
        for _ in range(100):
            libc.free(libc.malloc(200))
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    return lib

ev, rare, _ = run(work)
stats = native_mode.stats()
libs = libraries(ev, rare, domains=(4,))
ffi = rare.get("ffi", {{}})
print(json.dumps({{"refused": refused, "stats": stats, "libs": libs,
                  "events": ffi.get("event", [])}}))
""",
        preload=False,
    )
    result = last_json(proc)
    assert result["refused"] is True
    stats = result["stats"]
    assert stats["late"] is True
    assert (stats["double_frees"], stats["invalid_frees"]) == (1, 0)
    assert result["libs"].get("libmstest.so", 0) >= 4321 + 64
    assert "native.double_free" in result["events"]


def test_shim_loads_into_a_non_python_program():
    out = subprocess.run(
        ["/bin/sh", "-c", "echo ok; ls / > /dev/null"],
        env={"LD_PRELOAD": str(shim()), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "ok\n", "")
    undefined = subprocess.run(
        ["nm", "-D", "--undefined-only", str(shim())], capture_output=True, text=True, timeout=30
    ).stdout
    assert "Py" not in undefined  # nothing from libpython


def test_threads_and_fork_under_native_mode(tmp_path):
    proc = preloaded_python(
        tmp_path,
        DRIVER
        + """
import ctypes, os, threading
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
N = 1500

def churn(size):
    for _ in range(N):
        libc.free(libc.malloc(size))

def work():
    threads = [threading.Thread(target=churn, args=(5000 + k,)) for k in range(6)]
    for t in threads:
        t.start()
    children = []
    for _ in range(3):  # forks while the threads allocate
        pid = os.fork()
        if pid == 0:
            churn(4999)
            capture.drain()
            os._exit(0 if native_mode.stats()["invalid_frees"] == 0 else 3)
        children.append(pid)
    for t in threads:
        t.join()
    return [os.waitpid(pid, 0)[1] for pid in children]

ev, rare, statuses = run(work)
per_size = Counter(int(s) for s, k, d in zip(ev["size"], ev["kind"], ev["domain"])
                   if d == 4 and k == 0 and 5000 <= s < 5006)
print(json.dumps({"statuses": statuses, "per_size": per_size, "stats": native_mode.stats()}))
""",
    )
    result = last_json(proc)
    assert result["statuses"] == [0, 0, 0]
    assert result["per_size"] == {str(5000 + k): 1500 for k in range(6)}
    stats = result["stats"]
    assert (stats["double_frees"], stats["invalid_frees"], stats["untracked"]) == (0, 0, 0)


def test_preload_env_puts_the_shim_first_once():
    from memscope.producer.native_mode import preload_env

    env = preload_env({"LD_PRELOAD": f"/opt/other.so:{shim()}", "PATH": "/bin"})
    assert env["LD_PRELOAD"] == f"{shim()} /opt/other.so"
    assert (env["MEMSCOPE_NATIVE"], env["PATH"]) == ("1", "/bin")
    assert preload_env({})["LD_PRELOAD"] == str(shim())
