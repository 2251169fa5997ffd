"""``memscope attach PID``: trace a running CPython process for a while, then detach.

::

    memscope attach PID [--duration S] [--out DIR] [--broker ADDR] [--mode M] [--no-report]

An embedded broker writes the log to ``DIR/events/`` (default
``MemoryAnalysis/attach-<pid>-<time>/``), or ``--broker ADDR`` names a running one. The
process is told to ``memscope.init()`` towards it (:mod:`memscope.producer.remote_exec`: through
``sys.remote_exec`` on CPython 3.14+, gdb before), is traced for ``--duration`` seconds or
until Ctrl-C, then told to ``memscope.shutdown()``: its hooks are removed and it runs on
untraced. The reports are written as ``memscope run`` writes them.

What it cannot see: blocks allocated before the attach (their frees are counted as
unmatched frees and are left out of the totals), and anything after the detach. The
process's memscope must be importable in it (the attaching memscope's directory is added to
its ``sys.path`` when it is not) and of the same Python version.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memscope.errors import CliError

#: Seconds to wait for the process to run the injected code (its main thread must run
#: Python bytecode to do so).
START_TIMEOUT_S = 30.0
#: Seconds to wait, after the detach, for the process's final batch in the log.
SETTLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class AttachOptions:
    """What ``memscope attach`` was asked to do."""

    pid: int
    duration: float | None
    out_dir: Path
    broker: str | None
    mode: str | None
    method: str
    report: bool


class AttachCommand:
    """The ``attach`` verb."""

    name = "attach"
    help = "trace a running Python process for a while, then detach"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """PID and the options."""
        parser.add_argument("pid", type=int, metavar="PID", help="the process to trace")
        parser.add_argument(
            "--duration",
            type=float,
            metavar="S",
            help="detach after S seconds (default: at Ctrl-C)",
        )
        parser.add_argument(
            "--out",
            metavar="DIR",
            help="run directory (default MemoryAnalysis/attach-<pid>-<time>/)",
        )
        parser.add_argument(
            "--broker", metavar="ADDR", help="send to this running broker instead of starting one"
        )
        parser.add_argument(
            "--mode",
            choices=("full", "aggregated", "sampled"),
            help="the capture mode in the process (default: full)",
        )
        parser.add_argument(
            "--method",
            choices=("auto", "gdb", "remote_exec"),
            default="auto",
            help="how the code reaches the process (auto: sys.remote_exec on "
            "CPython 3.14+, else gdb)",
        )
        parser.add_argument("--no-report", action="store_true", help="only write the log")

    def run(self, args: argparse.Namespace) -> int:
        """Attach, trace, detach, report; 0 on success."""
        from memscope.producer.rundir import default_run_dir

        if args.pid == os.getpid() or args.pid <= 0:
            raise CliError(f"memscope attach: {args.pid} is not a process to attach to")
        if args.duration is not None and args.duration <= 0:
            raise CliError("memscope attach: --duration must be positive")
        out = Path(args.out) if args.out else default_run_dir(f"attach-{args.pid}")
        return execute(
            AttachOptions(
                args.pid,
                args.duration,
                out,
                args.broker,
                args.mode,
                args.method,
                not args.no_report,
            )
        )


COMMAND = AttachCommand()


def _say(message: str) -> None:
    print(f"memscope: {message}", file=sys.stderr, flush=True)


def start_script(address: str, log_dir: str, mode: str | None) -> str:
    """The statements that start tracing in the process (run inside :func:`attach.payload`)."""
    home = str(Path(__file__).resolve().parents[2])  # the folder holding the memscope package
    version = tuple(sys.version_info[:2])
    overrides = {"broker_address": address, "log_dir": log_dir}
    if mode:
        overrides["mode"] = mode
    return f"""
if tuple(_sys.version_info[:2]) != {version!r}:
    raise RuntimeError("it runs Python %d.%d; attach with that Python's memscope"
                       % tuple(_sys.version_info[:2]))
try:
    import memscope.api.attach_agent
except ModuleNotFoundError:
    _sys.path.append({home!r})
    import memscope.api.attach_agent
memscope.init(**{overrides!r})
"""


def stop_line(status: Path, cancelled: Path) -> str:
    """One short line that detaches (short: its own compiled code is traced until the end)."""
    return (
        f"__import__('memscope.api.attach_agent').api.attach_agent.stop("
        f"{str(status)!r}, {str(cancelled)!r})"
    )


def _wait_status(path: Path, timeout: float, pid: int) -> str | None:
    """The injected code's outcome, or None if it did not run within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return path.read_text().strip()
        if not _alive(pid):
            raise CliError(f"memscope attach: process {pid} ended", 1)
        time.sleep(0.05)
    return None


def _run_in(options: AttachOptions, work: Path, name: str, body: str | None) -> None:
    """Run ``body`` in the process (None: detach) and wait for its outcome.

    Raises:
        CliError: it failed, or the process did not run it in time.
    """
    from memscope.producer.remote_exec import AttachError, inject, payload

    status, cancelled = work / f"{name}.status", work / f"{name}.cancelled"
    script = payload(body, status, cancelled) if body else stop_line(status, cancelled)
    try:
        inject(options.pid, script, work, options.method)
    except AttachError as exc:
        raise CliError(f"memscope attach: {exc}", 1) from None
    outcome = _wait_status(status, START_TIMEOUT_S, options.pid)
    if outcome is None:
        cancelled.touch()  # the queued code will do nothing if it ever runs
        raise CliError(
            f"memscope attach: process {options.pid} did not run the {name} code "
            f"within {START_TIMEOUT_S:.0f} s (its main thread is not running "
            "Python code: blocked in a call?)",
            1,
        )
    if outcome != "ok":
        raise CliError(
            f"memscope attach: {name} in process {options.pid} failed: "
            f"{outcome.removeprefix('error: ')}",
            1,
        )


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, ended but not reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :][:1] not in ("Z", "X")


def _wait(duration: float | None, pid: int) -> None:
    """Wait ``duration`` seconds, or until Ctrl-C, or until the process ends."""
    if duration is None:
        _say("tracing; press Ctrl-C to detach")
    end = None if duration is None else time.monotonic() + duration
    try:
        while _alive(pid) and (end is None or time.monotonic() < end):
            time.sleep(0.1 if end is None else max(0.0, min(0.1, end - time.monotonic())))
    except KeyboardInterrupt:
        pass


def execute(options: AttachOptions) -> int:
    """Attach, trace, detach and report (see the module docstring)."""
    from memscope.config import load_settings
    from memscope.producer.remote_exec import AttachError, process_uid, work_dir
    from memscope.protocol.control_client import BrokerClient

    try:
        uid = process_uid(options.pid)
    except AttachError as exc:
        raise CliError(f"memscope attach: {exc}") from None
    settings = load_settings()
    broker = None
    if options.broker:
        from memscope.protocol.addresses import control_address

        address, control = options.broker, control_address(options.broker)
        events_dir = ""
    else:
        from memscope.broker import start_embedded

        if (options.out_dir / "events" / "manifest.json").exists():
            raise CliError(
                f"memscope attach: {options.out_dir} already holds a log; choose another --out"
            )
        events = options.out_dir / "events"
        try:
            broker = start_embedded(events, settings=settings)
        except RuntimeError as exc:
            raise CliError(f"memscope attach: {exc}", 1) from None
        address, control, events_dir = broker.address, broker.control_address, str(events.resolve())
    work = work_dir(uid)
    try:
        _run_in(options, work, "start", start_script(address, events_dir, options.mode))
        _say(f"attached to process {options.pid}")
        _wait(options.duration, options.pid)
        if _alive(options.pid):
            _run_in(options, work, "stop", None)
            _say(f"detached from process {options.pid}; it runs on untraced")
        else:  # its own exit sent the final batch (memscope.shutdown runs at exit)
            _say(f"process {options.pid} ended while traced")
        client = BrokerClient(control, settings)
        try:
            _settled(client, options.pid)
        finally:
            client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if broker is not None:
            broker.stop()
    if broker is None:
        _say(f"events sent to the broker at {options.broker}")
        return 0
    events_path = options.out_dir / "events"
    if options.report:
        _report(events_path, options.out_dir)
    else:
        _say(f"log: {events_path}")
    return 0


def _settled(client: Any, pid: int) -> None:
    """Wait until the process's exit row (its final batch) is in the log."""
    from memscope.eventlog.log import open_log

    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        log = client.flush().get("log") or client.ping().get("log")
        rows = open_log(log).dataset("processes").to_table(columns=["pid", "event"]).to_pylist()
        if any(r["pid"] == pid and r["event"] == "exit" for r in rows):
            return
        time.sleep(0.2)
    _say(f"the final batch of process {pid} is not in the log; its events may end early")


def _report(events_dir: Path, out_dir: Path) -> None:
    """The six analysis files and the reports, as ``memscope run`` writes them."""
    from memscope.analyzers import run_all
    from memscope.commands.report import progress_bar
    from memscope.exporters import write_reports

    _say(f"log: {events_dir}")
    try:
        with progress_bar("memscope: reports", analyzing=True) as bar:
            paths = list(run_all(events_dir, out_dir, progress=bar.step, on_chunk=bar.folded))
            paths += list(write_reports(out_dir, out_dir, progress=bar.step))
    except (RuntimeError, OSError, ValueError) as exc:
        _say(
            f"the reports could not be written: {exc}; the log is complete, retry with "
            f"`memscope analyze {events_dir}` and `memscope report {out_dir}`"
        )
        return
    _say(f"reports in {out_dir} (dashboard: {out_dir / 'dashboard.html'})")
