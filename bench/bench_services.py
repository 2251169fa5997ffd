"""Real programs under memscope and memray: wall time to every report, and every process's RSS.

    python bench/bench_services.py [--only gunicorn,deep,suite] [--requests 500]
                                   [--suite DIR] [--keep DIR]

Workloads (each run the same way under both tools, in the same run of this script):

* ``gunicorn``: gunicorn with 3 sync workers (a fork per worker) serving ``--requests``
  requests of a small JSON app from a client outside the traced tree, then SIGTERM.
  memscope: ``memscope run -m gunicorn ...`` (its reports written before it returns);
  memray: ``memray run --follow-fork`` then ``memray stats`` and ``memray flamegraph`` of every
  capture file.
* ``deep``: 2**17 distinct call paths 57 frames deep, each allocating (a stack tree of
  millions of nodes).
* ``suite``: a library's own test suite under pytest (``--suite DIR``, e.g. more-itertools'
  sdist unpacked; skipped without it).

For each: the total wall time, the time from the traced program's exit to the last report
(memscope), the traced program's exit code under each tool, and the peak RSS (VmHWM) of
every process of the tree, sampled every 50 ms from /proc. Goals (issue 12): memscope's total
within 1.5x memray's run + stats + flamegraph; exit to reports <= 2 s for 5 M events and
<= 10 s for 20 M; every memscope process <= 1 GiB.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import memray_reports

GIB = 1024**3

_APP = """
import json

def app(environ, start_response):
    rows = [{"id": i, "name": "user%d" % i, "tags": ["a", "b"] * (i % 4)} for i in range(200)]
    body = json.dumps({"path": environ.get("PATH_INFO"), "rows": rows}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""

_DEEP = """
import sys
sys.setrecursionlimit(10000)
LEVELS, PAD = 17, 40

def pad(k, bits):
    if k == 0:
        return [bits] * 3
    return pad(k - 1, bits)

def branch(bits, level):
    if level == LEVELS:
        return pad(PAD - 1, bits)
    if (bits >> level) & 1:
        return branch(bits, level + 1)
    else:
        return branch(bits, level + 1)

keep = [branch(bits, 0) for bits in range(1 << LEVELS)]
print(len(keep))
"""


class RssSampler:
    """Peak VmHWM of every process descended from ``root``, sampled from /proc."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root = root
        self.interval = interval
        self.peaks: dict[int, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _children(self) -> dict[int, int]:
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
        tree, frontier = {self.root}, [self.root]
        while frontier:
            pid = frontier.pop()
            for child, parent in parents.items():
                if parent == pid and child not in tree:
                    tree.add(child)
                    frontier.append(child)
        return {p: 0 for p in tree}

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._children():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                hwm = next(
                    (
                        int(line.split()[1]) * 1024
                        for line in status.splitlines()
                        if line.startswith("VmHWM:")
                    ),
                    0,
                )
                name = cmd.decode(errors="replace").strip()[:90]
                if hwm > self.peaks.get(pid, (0, ""))[0]:
                    self.peaks[pid] = (hwm, name)
            self._stop.wait(self.interval)

    def largest(self) -> tuple[int, str]:
        """(peak bytes, command) of the process with the highest peak."""
        return max(self.peaks.values(), default=(0, ""))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def _requests(port: int, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(n):
        conn.request("GET", f"/item/{i}")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"request {i}: HTTP {response.status}")
    conn.close()


def _memray_reports(tmp: Path, capture: Path) -> None:
    """``memray stats`` and ``memray flamegraph`` of every capture file of a run."""
    for path in sorted(tmp.glob(capture.name + "*")):
        if path.suffix == ".html" or path.name.endswith(".json"):
            continue
        memray_reports(path)


def gunicorn(tmp: Path, tool: str, requests: int) -> dict:
    """One gunicorn run under ``tool``; timings, exit code and RSS peaks."""
    (tmp / "app.py").write_text(_APP)
    port = _free_port()
    pidfile = tmp / f"{tool}.pid"
    serve = ["-m", "gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}", "-p", str(pidfile), "app:app"]
    if tool == "memscope":
        cmd = [sys.executable, "-m", "memscope", "run", "--out", str(tmp / "ms"), *serve]
    else:
        cmd = [
            sys.executable,
            "-m",
            "memray",
            "run",
            "--follow-fork",
            "-q",
            "-o",
            str(tmp / "gunicorn.bin"),
            *serve,
        ]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with RssSampler(proc.pid) as rss:
        _wait_port(port)
        _requests(port, requests)
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
        master_gone = _wait_gone(int(pidfile.read_text()) if pidfile.exists() else 0)
        stderr = proc.communicate(timeout=600)[1]
        if tool == "memray":
            _memray_reports(tmp, tmp / "gunicorn.bin")
        total = time.perf_counter() - started
    return {
        "total_s": total,
        "after_exit_s": total - (master_gone - started),
        "exit": proc.returncode,
        "rss": rss.peaks,
        "stderr": stderr.decode()[-400:],
    }


def _wait_gone(pid: int, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    return time.perf_counter()


def program(tmp: Path, tool: str, argv: list[str], cwd: Path, name: str) -> dict:
    """A program (``argv`` after the interpreter) under ``tool``; timings and RSS peaks."""
    if tool == "memscope":
        cmd = [sys.executable, "-m", "memscope", "run", "--out", str(tmp / f"ms-{name}"), *argv]
    elif tool == "memray":
        cmd = [
            sys.executable,
            "-m",
            "memray",
            "run",
            "--follow-fork",
            "-q",
            "-o",
            str(tmp / f"{name}.bin"),
            *argv,
        ]
    else:
        cmd = [sys.executable, *argv]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with RssSampler(proc.pid) as rss:
        stderr = proc.communicate(timeout=3600)[1]
        returned_ns = time.monotonic_ns()
        ran = time.perf_counter() - started
        if tool == "memray":
            _memray_reports(tmp, tmp / f"{name}.bin")
        total = time.perf_counter() - started
    row = {
        "total_s": total,
        "run_s": ran,
        "exit": proc.returncode,
        "rss": rss.peaks,
        "stderr": stderr.decode()[-400:],
    }
    if tool == "memscope":
        exited = _program_exit_ns(tmp / f"ms-{name}")
        if exited:
            row["after_exit_s"] = (returned_ns - exited) / 1e9
    return row


def _program_exit_ns(run_dir: Path) -> int | None:
    """When the traced program's first process exited (CLOCK_MONOTONIC, from its log)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "query",
            str(run_dir),
            "SELECT end_ts_ns FROM processes ORDER BY start_ts_ns LIMIT 1",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    try:
        rows = json.loads(out.stdout)
        return int(rows[0]["end_ts_ns"]) if rows and rows[0]["end_ts_ns"] else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _events(run_dir: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "memscope", "stats", "--json", str(run_dir)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        return 0
    stats = json.loads(out.stdout)
    return sum(int(r.get("events") or 0) for r in stats.get("ingest", []))


def _report(name: str, rows: dict[str, dict], events: int) -> None:
    print(f"\n== {name}" + (f" ({events:,} memory events under memscope)" if events else ""))
    print(f"{'tool':10} {'exit':>5} {'total s':>8} {'ratio':>6}  largest process RSS")
    base = rows.get("memray", {}).get("total_s")
    for tool, r in rows.items():
        peak, cmd = max(r["rss"].values(), default=(0, ""))
        ratio = f"{r['total_s'] / base:.2f}" if base else ""
        print(
            f"{tool:10} {r['exit']:>5} {r['total_s']:8.1f} {ratio:>6}  "
            f"{peak / 2**20:7.0f} MiB  {cmd[:60]}"
        )
    ms = rows.get("memscope")
    if ms:
        over = [(p, c) for p, c in ms["rss"].values() if p > GIB]
        print(
            f"memscope processes over 1 GiB: {len(over)}"
            + (f" ({', '.join(c[:40] for _, c in over)})" if over else "")
        )
        if "after_exit_s" in ms:
            print(
                f"memscope, from the program's exit to its last report: {ms['after_exit_s']:.1f} s"
            )
        if ms["exit"] and ms.get("stderr"):
            print(f"memscope stderr: {ms['stderr']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="gunicorn,deep,suite")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--suite", type=Path, help="a library's source tree with its tests/")
    parser.add_argument("--keep", type=Path, help="keep the runs here")
    args = parser.parse_args()
    only = set(args.only.split(","))
    root = args.keep or Path(tempfile.mkdtemp(prefix="memscope-services-"))
    root.mkdir(parents=True, exist_ok=True)
    if "gunicorn" in only:
        rows = {}
        for tool in ("memray", "memscope"):
            work = root / f"gunicorn-{tool}"
            work.mkdir(exist_ok=True)
            rows[tool] = gunicorn(work, tool, args.requests)
        _report(
            f"gunicorn, 3 sync workers, {args.requests} requests",
            rows,
            _events(root / "gunicorn-memscope" / "ms"),
        )
    if "deep" in only:
        work = root / "deep"
        work.mkdir(exist_ok=True)
        (work / "deep.py").write_text(_DEEP)
        rows = {
            tool: program(work, tool, ["deep.py"], work, "deep")
            for tool in ("plain", "memray", "memscope")
        }
        _report("2**17 distinct call paths, 57 frames deep", rows, _events(work / "ms-deep"))
    if "suite" in only and args.suite:
        work = root / "suite"
        work.mkdir(exist_ok=True)
        argv = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
        rows = {
            tool: program(work, tool, argv, args.suite, "suite")
            for tool in ("plain", "memray", "memscope")
        }
        _report(f"pytest of {args.suite.name}", rows, _events(work / "ms-suite"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
