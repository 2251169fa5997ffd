"""``memscope attach PID``: a running loop is traced for 2 s, detached, and keeps running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from api_support import clean_env, table

from memscope.producer.remote_exec import (
    AttachError,
    gdb_command,
    inject,
    payload,
    ptrace_hint,
    via_gdb,
    via_remote_exec,
)

pytestmark = pytest.mark.timeout(180)

LOOP = """
import sys
import time


def loop_body(i):
    return [str(j) * 3 for j in range(200)]


i = 0
while True:
    loop_body(i)
    i += 1
    if i % 20 == 0:
        with open(sys.argv[1], "w") as fh:
            fh.write(str(i))
    time.sleep(0.005)
"""


def _beats(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def _gdb_usable() -> bool:
    return (
        hasattr(sys, "remote_exec")
        or shutil.which("gdb") is not None
        or Path("/usr/bin/gdb").exists()
    )


@pytest.mark.skipif(not _gdb_usable(), reason="needs gdb (or CPython 3.14's sys.remote_exec)")
def test_a_running_loop_is_attached_traced_detached_and_keeps_running(tmp_path: Path) -> None:
    script, beats = tmp_path / "loop.py", tmp_path / "beats"
    script.write_text(LOOP)
    env = clean_env()
    loop = subprocess.Popen([sys.executable, str(script), str(beats)], env=env)
    try:
        deadline = time.monotonic() + 30
        while _beats(beats) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        out = tmp_path / "run"
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "memscope",
                "attach",
                str(loop.pid),
                "--duration",
                "2",
                "--out",
                str(out),
                "--no-report",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        took = time.monotonic() - started
        if "not allowed to trace" in done.stderr:
            pytest.skip(done.stderr.strip())
        assert done.returncode == 0, done.stderr
        assert f"attached to process {loop.pid}" in done.stderr
        assert f"detached from process {loop.pid}" in done.stderr
        assert 2.0 <= took < 60
        # Detached: it keeps running (and allocating) untraced.
        after = _beats(beats)
        time.sleep(0.5)
        assert loop.poll() is None
        assert _beats(beats) > after
    finally:
        loop.kill()
        loop.wait()
    log = out / "events"
    rows = [r for r in table(log, "processes") if r["pid"] == loop.pid]
    assert {r["event"] for r in rows} == {"start", "exit"}
    from memscope.analyzers.views import connect

    con = connect(log)
    (body, span) = con.execute(
        """SELECT count(*), (max(a.ts_ns) - min(a.ts_ns)) / 1e9 FROM allocations a
        JOIN stacks s USING (pid, stack_id) WHERE s.function LIKE 'loop_body%'"""
    ).fetchone()
    # 2 s of a loop that runs loop_body about 150 times a second, 200+ blocks each.
    assert body > 10_000, body
    assert 1.5 < span < 10, span
    con.close()


def test_attach_to_no_process_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "attach",
            "999999999",
            "--duration",
            "1",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "memscope: memscope attach: no process 999999999"


def test_the_payload_never_raises_and_reports_its_outcome(tmp_path: Path) -> None:
    status, cancelled = tmp_path / "s", tmp_path / "c"
    exec(payload("raise ValueError('boom')", status, cancelled), {})  # noqa: S102
    assert status.read_text() == "error: ValueError: boom"
    status.unlink()
    cancelled.touch()
    exec(payload("x = 1", status, cancelled), {})  # noqa: S102
    assert not status.exists()  # given up by memscope attach: nothing runs


def test_the_gdb_command_carries_no_quotes_of_the_program(tmp_path: Path) -> None:
    command = gdb_command(
        123, payload("print('a \"b\" \\\\ c')", tmp_path / "s", tmp_path / "c"), "gdb"
    )
    call = command[-1]
    assert call.startswith("call ((int (*)(int (*)(void *), void *))Py_AddPendingCall)")
    inner = call[call.index('(void *)"') + 9 : -2]
    assert '"' not in inner and "\\" not in inner
    assert "-p" in command and "123" in command


@pytest.mark.skipif(not _gdb_usable() or os.geteuid() != 0, reason="needs gdb, as root")
def test_gdb_on_a_process_that_is_not_python_is_a_clear_error() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(AttachError, match="not a CPython interpreter"):
            via_gdb(sleeper.pid, "pass")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert ptrace_hint() == "running as root"


@pytest.mark.skipif(not _gdb_usable(), reason="needs gdb (or CPython 3.14's sys.remote_exec)")
def test_a_process_that_ends_while_traced_keeps_its_events(tmp_path: Path) -> None:
    script, beats = tmp_path / "loop.py", tmp_path / "beats"
    script.write_text(LOOP.replace("while True:", "while i < 300:"))  # about 2 s
    loop = subprocess.Popen([sys.executable, str(script), str(beats)], env=clean_env())
    try:
        while _beats(beats) == 0 and loop.poll() is None:
            time.sleep(0.05)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "memscope",
                "attach",
                str(loop.pid),
                "--duration",
                "60",
                "--out",
                str(tmp_path / "run"),
                "--no-report",
            ],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=120,
            check=False,
        )
    finally:
        loop.kill()
        loop.wait()
    if "not allowed to trace" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    assert f"process {loop.pid} ended while traced" in done.stderr
    rows = [r for r in table(tmp_path / "run" / "events", "processes") if r["pid"] == loop.pid]
    assert {r["event"] for r in rows} == {"start", "exit"}


@pytest.mark.skipif(hasattr(sys, "remote_exec"), reason="this Python has sys.remote_exec")
def test_remote_exec_needs_cpython_3_14(tmp_path: Path) -> None:
    with pytest.raises(AttachError, match="needs CPython 3.14"):
        via_remote_exec(os.getpid(), "pass", tmp_path)
    with pytest.raises(AttachError, match="needs CPython 3.14"):
        inject(os.getpid(), "pass", tmp_path, method="remote_exec")


@pytest.mark.skipif(not hasattr(sys, "remote_exec"), reason="sys.remote_exec is CPython 3.14+")
def test_remote_exec_runs_the_script_in_the_process(tmp_path: Path) -> None:
    status, cancelled = tmp_path / "s", tmp_path / "c"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"])
    try:
        time.sleep(0.5)
        assert inject(sleeper.pid, payload("x = 1", status, cancelled), tmp_path) == "remote_exec"
        deadline = time.monotonic() + 30
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status.read_text() == "ok"
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.skipif(not _gdb_usable(), reason="needs gdb (or CPython 3.14's sys.remote_exec)")
def test_ctrl_c_detaches(tmp_path: Path) -> None:
    import signal

    script, beats = tmp_path / "loop.py", tmp_path / "beats"
    script.write_text(LOOP)
    loop = subprocess.Popen([sys.executable, str(script), str(beats)], env=clean_env())
    try:
        while _beats(beats) == 0:
            time.sleep(0.05)
        attach = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "memscope",
                "attach",
                str(loop.pid),
                "--out",
                str(tmp_path / "run"),
                "--no-report",
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        assert attach.stderr is not None
        lines = []
        for line in attach.stderr:
            lines.append(line)
            if "press Ctrl-C" in line or "not allowed" in line:
                break
        if any("not allowed" in line for line in lines):
            attach.wait()
            pytest.skip("".join(lines).strip())
        time.sleep(1.0)
        attach.send_signal(signal.SIGINT)
        rest = attach.stderr.read()
        assert attach.wait(timeout=60) == 0, "".join(lines) + rest
        assert f"detached from process {loop.pid}" in rest
        assert loop.poll() is None
    finally:
        loop.kill()
        loop.wait()
    rows = [r for r in table(tmp_path / "run" / "events", "processes") if r["pid"] == loop.pid]
    assert {r["event"] for r in rows} == {"start", "exit"}
