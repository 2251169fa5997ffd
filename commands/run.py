"""``memscope run``: trace a Python program and every Python process it starts, then report.

::

    memscope run [--broker ADDR] [--out DIR] [--mode full|aggregated|sampled] script.py args
    memscope run [options] -m package.module args
    memscope run [options] -c CODE args

Every word after the script path or ``-m MODULE`` is the program's, unchanged (see
:func:`split_argv`): ``memscope run -m pytest -q -x``.

With ``--broker ADDR``, or else with ``MEMSCOPE_BROKER_ADDRESS`` / ``broker_address`` in the
configuration set (not by an enclosing ``memscope run``), the events go to that running broker
and no broker is started. Otherwise an embedded broker writes the log to ``DIR/events/``
(``DIR`` defaults to ``MemoryAnalysis/<program>-<YYYYmmdd-HHMMSS>/``). The program runs in a
child interpreter whose environment names the broker and puts a bootstrap ``sitecustomize``
first on ``PYTHONPATH`` (:mod:`memscope.producer.bootstrap`), so it, its forked, spawned and
forkserver children and its Python subprocesses all trace into the same log.

The program's stdin, stdout and stderr are its own (memscope writes only to stderr);
SIGINT, SIGTERM and SIGHUP sent to ``memscope run`` are passed on to it (a Ctrl-C typed at the
terminal already reaches it, and is not sent twice); its exit code is ``memscope run``'s,
and a program killed by signal N exits with 128+N. After it ends, ``memscope run`` waits until
every traced process's final batch is in the log (its ``exit`` row; a process that died
without one is waited for only while it may still send), then writes the six analysis files
and the reports into ``DIR`` and prints where they are.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memscope.api.offline import BOOTSTRAP_ENV
from memscope.commands.descendants import tracing_into
from memscope.errors import CliError
from memscope.producer.bootstrap import make_bootstrap_dir
from memscope.producer.harvest import Harvest, Harvester, run_arena_dir
from memscope.producer.rundir import default_run_dir, program_label
from memscope.producer.signals import blocked
from memscope.timings import mark

#: Signals passed on to the program.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: ``si_code`` of a signal the kernel sent (a terminal's Ctrl-C goes to the whole group).
_SI_KERNEL = 0x80
#: Set beside ``MEMSCOPE_BROKER_ADDRESS`` in the program's environment (same value).
RUN_BROKER_ENV = "_MEMSCOPE_RUN_BROKER_ADDRESS"
#: Seconds to wait, after the program ends, for the traced processes' last events.
SETTLE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RunOptions:
    """What ``memscope run`` was asked to do."""

    argv: tuple[str, ...]  # arguments after the interpreter: script args / -m module args
    label: str
    out_dir: Path
    broker: str | None
    mode: str | None
    native: bool = False  # preload the allocator shim (memscope.producer.native_mode)
    report: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """Validate the parsed arguments."""
        passthrough = getattr(args, "passthrough", None)
        program = list(args.program if passthrough is None else passthrough)
        if passthrough is None and program and program[0] == "--":
            program = program[1:]
        if args.module is not None and args.code is not None:
            raise CliError("memscope run: give -m MODULE or -c CODE, not both")
        if args.module:
            argv: tuple[str, ...] = ("-m", args.module, *program)
            label = program_label(module=args.module)
        elif args.code is not None:
            argv = ("-c", args.code, *program)
            label = "python-c"
        else:
            if not program:
                raise CliError(
                    "memscope run: name a script (memscope run script.py), -m MODULE or -c CODE"
                )
            script = Path(program[0])
            if not script.is_file():
                raise CliError(f"memscope run: {program[0]}: no such file")
            argv = tuple(program)
            label = program_label(argv=program)
        out_dir = Path(args.out) if args.out else default_run_dir(label)
        return cls(
            argv, label, out_dir, args.broker, args.mode, bool(args.native), not args.no_report
        )


class RunCommand:
    """The ``run`` verb."""

    name = "run"
    help = "trace a program and its children, then report"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the options (everything after the script belongs to the script)."""
        parser.add_argument(
            "--broker",
            metavar="ADDR",
            help="send to this broker instead of starting one (default: "
            "MEMSCOPE_BROKER_ADDRESS or the config's broker_address, "
            "else an embedded broker)",
        )
        parser.add_argument(
            "--out", metavar="DIR", help="run directory (default MemoryAnalysis/<program>-<time>/)"
        )
        parser.add_argument(
            "--mode",
            choices=("full", "aggregated", "sampled"),
            help="full: every event; aggregated: short-lived pairs folded at "
            "the source; sampled: byte-volume sampling",
        )
        parser.add_argument(
            "--native",
            action="store_true",
            help="also trace malloc/free/mmap of native code (C extensions, "
            "ctypes/cffi libraries) through a preloaded allocator shim",
        )
        parser.add_argument(
            "--no-report",
            action="store_true",
            help="only write the log (analyze it later with memscope analyze)",
        )
        parser.add_argument(
            "-m", dest="module", metavar="MODULE", help="run a module, like python -m"
        )
        parser.add_argument(
            "-c",
            dest="code",
            metavar="CODE",
            help="run a program passed as a string, like python -c",
        )
        parser.add_argument(
            "program",
            nargs=argparse.REMAINDER,
            help="script.py and its arguments (or the module's arguments)",
        )

    def split_argv(self, argv: list[str]) -> tuple[list[str], list[str]]:
        """Split ``run``'s arguments into memscope's own and the program's; see `split_argv`."""
        return split_argv(argv)

    def run(self, args: argparse.Namespace) -> int:
        """Trace the program, wait for its events, write the reports; its exit code."""
        options = RunOptions.from_args(args)
        return execute(options)


COMMAND = RunCommand()

#: ``run``'s own options that take a value (``-m``'s value is the module, handled apart).
_VALUE_OPTIONS = ("--broker", "--out", "--mode")
_FLAG_OPTIONS = ("--native", "--no-report", "--help")


def _long_option(token: str) -> str | None:
    """The option a long ``token`` names, also abbreviated as argparse allows (else None)."""
    name = token.split("=", 1)[0]
    matches = [o for o in (*_VALUE_OPTIONS, *_FLAG_OPTIONS) if o.startswith(name)]
    return name if name in matches else (matches[0] if len(matches) == 1 else None)


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(memscope's options, the program's arguments)`` of the words after ``run``.

    The program's part starts at the script path, or right after ``-m MODULE`` or
    ``-c CODE`` (the module's name or the code stays with memscope's options), or after a
    ``--`` that ends memscope's options.
    From there every word goes to the program unchanged, even one that looks like an option
    of ``memscope run`` (``memscope run -m pytest -q -x``, ``memscope run s.py --out x``).
    One exception keeps the form older docs showed working: a ``--`` right after
    ``-m MODULE`` (``memscope run -m pytest -- -x``) is dropped; write ``-- --`` to pass one.
    """
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return argv[:i], argv[i + 1 :]
        if word[:2] in ("-m", "-c") and not word.startswith("--"):
            end = i + 2 if word in ("-m", "-c") else i + 1  # -mMODULE, -cCODE, like python
            rest = argv[end:]
            return argv[:end], rest[1:] if rest[:1] == ["--"] else rest
        if word == "-" or not word.startswith("-"):
            return argv[:i], argv[i:]
        option = _long_option(word) if word.startswith("--") else None
        takes_value = option in _VALUE_OPTIONS and "=" not in word
        i += 2 if takes_value else 1
    return argv, []


def _say(message: str) -> None:
    print(f"memscope: {message}", file=sys.stderr, flush=True)


def execute(options: RunOptions) -> int:
    """Run ``options`` end to end; return the program's exit code."""
    from memscope.config import load_settings
    from memscope.protocol.control_client import BrokerClient

    try:
        settings = load_settings()
    except ValueError as exc:  # a bad MEMSCOPE_* value or config file
        raise CliError(f"memscope run: {exc}", 2) from None
    if options.mode:
        settings = settings.replace(mode=options.mode)
    remote, source = (
        (options.broker, "--broker")
        if options.broker
        else _configured_broker(settings.broker_address)
    )
    broker = None
    events_dir: Path | None = options.out_dir / "events"
    if remote:
        from memscope.protocol.addresses import control_address

        if source != "--broker":
            _say(
                f"sending to the broker at {remote} ({source}), not starting one; "
                "--broker ADDR overrides it, an empty MEMSCOPE_BROKER_ADDRESS= starts one"
            )
        address, control = remote, control_address(remote)
        events_dir = _remote_log(BrokerClient(control, settings), f"{remote} ({source})")
    else:
        from memscope.broker import start_embedded

        if (options.out_dir / "events" / "manifest.json").exists():
            raise CliError(
                f"memscope run: {options.out_dir} already holds a run's log; "
                "choose another --out (or remove that directory)"
            )
        try:
            broker = start_embedded(events_dir, settings=settings)
        except RuntimeError as exc:
            raise CliError(f"memscope run: {exc}", 1) from None
        address, control = broker.address, broker.control_address
    prepared = _prepare_reports(events_dir, options, broker)
    bootstrap = make_bootstrap_dir()
    harvester = Harvester(run_arena_dir(settings), settings, _told_harvest)
    try:
        env = _program_env(address, events_dir, bootstrap, options.mode)
        env["MEMSCOPE_ARENA_DIR"] = str(harvester.directory)  # crash capture (harvest.py)
        if options.native:  # native mode: the shim is preloaded into the program and children
            env = _native_env(env)
        launched_ns = time.monotonic_ns()
        with blocked():  # its thread leaves the signals to _run_program
            harvester.start()
        pid, returncode, reaped_ns = _run_program(options.argv, env)
        mark("program reaped")
        _program_ended(prepared)
        code = 128 - returncode if returncode < 0 else returncode
        harvester.stop()
        harvester.sweep()  # what the program (and its children) left if killed
        mark("harvester swept")
        # A running broker may also serve other programs: wait only for ours.
        missing = _confirm(
            BrokerClient(control, settings),
            settings,
            address,
            events_dir,
            launched_ns if broker is None else None,
            (pid, returncode, reaped_ns),
            harvester,
        )
        mark("last batches confirmed")
        for producer in missing:
            _say(f"no final batch from {producer} (still running?); its events may end early")
    finally:
        shutil.rmtree(bootstrap, ignore_errors=True)
        harvester.stop()
        harvester.remove()
        if broker is not None:
            broker.stop()
            mark("broker stopped")
    if events_dir is None:
        _say(
            f"events sent to the broker at {remote}; analyze its log with "
            "`memscope analyze LOG --out DIR`"
        )
        return code
    if options.report:
        _report(events_dir, options.out_dir, prepared)
    else:
        _say(f"log: {events_dir}")
    return code


def _configured_broker(broker_address: str) -> tuple[str | None, str]:
    """The broker that configuration names, and where that came from: (address or None, source).

    ``MEMSCOPE_BROKER_ADDRESS`` (or ``broker_address`` in ``$MEMSCOPE_CONFIG``) names a broker
    for every producer, ``memscope run`` included. One that an enclosing ``memscope run`` put
    into this environment for its own program (this is a traced process's child) is not a
    choice of the user: a nested ``memscope run`` then starts its own broker, as before.
    """
    if not broker_address:
        return None, ""
    from_env = os.environ.get("MEMSCOPE_BROKER_ADDRESS")
    if from_env is not None and from_env == os.environ.get(RUN_BROKER_ENV):
        return None, ""
    if from_env is not None:
        return broker_address, "MEMSCOPE_BROKER_ADDRESS"
    return broker_address, f"broker_address in {os.environ.get('MEMSCOPE_CONFIG', 'config')}"


def _remote_log(client: Any, broker: str) -> Path | None:
    try:
        log = client.ping().get("log")
    except RuntimeError as exc:
        raise CliError(f"memscope run: the broker at {broker}: {exc}", 1) from None
    finally:
        client.close()
    path = Path(str(log)) if log else None
    return path if path is not None and path.exists() else None


def _program_env(
    address: str, events_dir: Path | None, bootstrap: Path, mode: str | None
) -> dict[str, str]:
    env = dict(os.environ)
    env["MEMSCOPE_BROKER_ADDRESS"] = address
    env[RUN_BROKER_ENV] = address  # tells a nested memscope run that we set it
    if events_dir is not None:
        env["MEMSCOPE_LOG_DIR"] = str(events_dir.resolve())
    else:
        env.pop("MEMSCOPE_LOG_DIR", None)
    if mode:
        env["MEMSCOPE_MODE"] = mode
    env[BOOTSTRAP_ENV] = str(bootstrap)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(bootstrap) + (os.pathsep + path if path else "")
    return env


def _native_env(env: dict[str, str]) -> dict[str, str]:
    from memscope.producer.native_mode import preload_env

    try:
        return preload_env(env)
    except FileNotFoundError as exc:
        raise CliError(f"memscope run --native: {exc}", 1) from None


def _confirm(
    client: Any,
    settings: Any,
    address: str,
    events_dir: Path | None,
    since: int | None,
    ended: tuple[int, int, int],
    harvester: Harvester | None = None,
) -> list[str]:
    """Wait for the traced processes' last batches and log the program's exit status.

    Returns the producers whose final batch never came. Never raises: a broker that cannot
    write its log, or stopped answering, is said in one line.
    """
    try:
        missing = _settle(
            client, SETTLE_TIMEOUT_S, settings.flush_interval_s, since, harvester, address
        )
        mark("exit rows in")
        if not _log_writable(client, settings.spool_dir, events_dir):
            return []  # (said once by _log_writable)
        pid, returncode, reaped_ns = ended
        _record_exit(address, client, pid, returncode, reaped_ns, settings.mode)
        return missing
    except RuntimeError as exc:  # BrokerError: the broker stopped answering
        _say(
            f"the broker did not confirm the end of the run ({exc}); what reached the "
            "log is reported"
        )
        return []
    finally:
        client.close()


def _log_writable(client: Any, spool_dir: str, events_dir: Path | None) -> bool:
    """Whether the broker can write its log; if not, say once what landed and where the rest is.

    A broker that cannot write (a full disk) refuses batches; the traced processes keep
    them, and those that ended before the space came back left them in spool files.
    """
    summary = client.flush()
    if summary.get("log_writable", True):
        return True
    from memscope.producer.backlog import spool_path

    spool = spool_path(spool_dir, "x").parent
    log = events_dir or "LOG"
    _say(
        f"{summary.get('log_error', 'the log cannot be written')}: it holds "
        f"{summary.get('events', 0):,} memory events of {summary.get('producers', 0)} "
        f"processes; {summary.get('refused', 0):,} refused batches are kept in {spool}/ "
        f"(once there is space: memscope broker --log {log} --bind ADDR, then "
        f"python -m memscope.producer.spool --address ADDR {spool}/*.spool)"
    )
    return False


def _record_exit(
    address: str, client: Any, pid: int, returncode: int, reaped_ns: int, mode: str
) -> None:
    from memscope.commands.exit_status import record_exit_status

    rows = [r for r in _process_rows(client) if r["pid"] == pid]
    if not rows:
        return  # the program was not traced (MEMSCOPE_DISABLE): nothing to complete
    # Its end is its own exit row when it wrote one (what follows is only its final flush).
    own_exit = [r["ts_ns"] for r in rows if r["event"] == "exit"]
    ended_ns = max(own_exit) + 1 if own_exit else reaped_ns
    try:
        record_exit_status(address, client, pid, returncode, ended_ns, mode)
    except RuntimeError as exc:  # BrokerError: the row did not land in time
        _say(f"the program's exit status is not in the log: {exc}")


def _run_program(argv: tuple[str, ...], env: dict[str, str]) -> tuple[int, int, int]:
    """Run the program with signals passed on: (pid, returncode (-N: signal N), reaped at)."""
    try:
        child = subprocess.Popen([sys.executable, *argv], env=env)
    except OSError as exc:
        raise CliError(f"memscope run: cannot start {sys.executable}: {exc}", 1) from None
    waited = {*FORWARDED, signal.SIGCHLD}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        while child.poll() is None:
            info = signal.sigtimedwait(waited, 1.0)
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            if info.si_code != _SI_KERNEL and child.poll() is None:
                child.send_signal(info.si_signo)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return child.pid, int(child.returncode), time.monotonic_ns()


def _process_rows(client: Any) -> list[dict[str, Any]]:
    """The log's ``processes`` rows (pid, producer, event, ts_ns), after a broker flush."""
    from memscope.eventlog.log import open_log

    summary = client.flush()
    log = summary.get("log") or client.ping().get("log")
    columns = ["producer", "pid", "event", "ts_ns", "host"]
    rows: list[dict[str, Any]] = (
        open_log(log).dataset("processes").to_table(columns=columns).to_pylist()
    )
    return rows


def _processes(client: Any, since_ns: int | None = None) -> dict[str, tuple[int, bool]]:
    """Each producer -> (pid, has its exit row).

    With ``since_ns``, only the producers of this host that started at or after it (the
    program and every process started while it ran; monotonic clocks compare on one host).
    """
    rows = _process_rows(client)
    if since_ns is not None:
        host = socket.gethostname()
        ours = {
            r["producer"]
            for r in rows
            if r["event"] == "start" and r["host"] == host and r["ts_ns"] >= since_ns
        }
        rows = [r for r in rows if r["producer"] in ours]
    out: dict[str, tuple[int, bool]] = {}
    for row in rows:
        _, ended = out.get(row["producer"], (row["pid"], False))
        out[row["producer"]] = (int(row["pid"]), ended or row["event"] == "exit")
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _told_harvest(harvest: Harvest) -> None:
    if not (harvest.events or harvest.replayed):
        return  # (killed with everything shipped: its exit row was all that was missing)
    if harvest.closed:
        what = f"{harvest.replayed} batches it had spooled"
    else:
        what = (
            f"{harvest.events} events from its buffers and {harvest.replayed} batches from "
            "its spool"
        )
    _say(f"process {harvest.pid} ended without shipping everything; recovered {what}")


def _settle(
    client: Any,
    timeout: float,
    interval: float,
    since_ns: int | None = None,
    harvester: Harvester | None = None,
    address: str | None = None,
) -> list[str]:
    """Wait until every traced process's exit row is in; the producers still missing one.

    With ``since_ns`` only the processes of this host started since then count (see
    :func:`_processes`). It waits two flush intervals at least, for a process started just
    before the program ended to announce itself, unless no live process traces into the
    broker at ``address`` (:func:`memscope.commands.descendants.tracing_into`).

    A process that is gone without an exit row (killed) is given ``grace`` seconds for a
    batch still in flight; one still running is waited for until ``timeout``.
    """
    start = time.monotonic()
    grace = max(4 * interval, 1.0)
    dead_since: dict[str, float] = {}
    told = False
    while True:
        now = time.monotonic()
        pending = {p: pid for p, (pid, ended) in _processes(client, since_ns).items() if not ended}
        for producer, pid in pending.items():
            if not _alive(pid):
                dead_since.setdefault(producer, now)
        if harvester is not None and dead_since and harvester.sweep():
            continue  # a dead process's records and exit row just landed
        waiting = [p for p in pending if now - dead_since.get(p, now) < grace]
        if waiting and not told and now - start > 3.0:
            pids = ", ".join(str(pending[p]) for p in waiting)
            _say(f"waiting up to {timeout:.0f} s for traced processes still running: {pids}")
            told = True
        # Wait two flush intervals at least: a child forked just before the program ended
        # may not have announced itself yet (none can if no process would trace into ours).
        if not waiting and (
            now - start >= 2 * interval or (address is not None and tracing_into(address) is False)
        ):
            return sorted(pending)
        if now - start >= timeout:
            return sorted(pending)
        time.sleep(min(interval, 0.2))


def _prepare_reports(events_dir: Path | None, options: RunOptions, broker: Any) -> Any:
    """What folds the embedded broker's log as it is written (None without one).

    A :class:`memscope.commands.run_reports.RunReports`; its thread and child process end
    with this process.
    """
    if events_dir is None or broker is None or not options.report:
        return None
    from memscope.commands.run_reports import RunReports

    return RunReports(events_dir, options.out_dir)


def _program_ended(prepared: Any) -> None:
    if prepared is not None:
        prepared.program_ended()


def _report(events_dir: Path, out_dir: Path, prepared: Any = None) -> None:
    """Analyze and export into ``out_dir``; say what was written, or why not."""
    from memscope.commands.run_reports import RunReports
    from memscope.eventlog.log import open_log

    _say(f"log: {events_dir}")
    if open_log(events_dir).dataset("processes").count_rows() == 0:
        _say("no traced process sent anything (is MEMSCOPE_DISABLE set?); no reports")
        if prepared is not None:
            prepared.close()
        return
    from memscope.commands.report import progress_bar

    reports = prepared or RunReports(events_dir, out_dir)
    try:
        with progress_bar("memscope: reports", analyzing=True) as bar:
            reports.log_closed(on_events=bar.folded)
            mark("final fold")

            def step(name: str) -> None:
                mark(name)
                bar.step(name)

            paths = reports.write(progress=step, on_chunk=bar.folded)
    except (RuntimeError, OSError, ValueError) as exc:
        _say(
            f"the reports could not be written: {exc}; the log is complete, retry with "
            f"`memscope analyze {events_dir}` and `memscope report {out_dir}`"
        )
        return
    finally:
        reports.close()
        mark("reports closed")
    for path in paths:
        _say(f"wrote {path}")
