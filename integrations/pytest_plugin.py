"""memscope's pytest plugin: trace a test session, and limit a test's memory or its leaks.

Registered through the ``pytest11`` entry point ``memscope.integrations.pytest_plugin`` (named
like the module, so ``-p memscope.integrations.pytest_plugin`` never registers it twice and
``-p no:memscope.integrations.pytest_plugin`` switches it off), so it is loaded by every pytest
in an environment where memscope is installed -- and does nothing there unless asked: no
tracing, no threads, no imports beyond the standard library until ``--memscope`` is given.
The markers, too, take effect only with ``--memscope`` (as pytest-memray's do with
``--memray``), so a suite written for pytest-memray runs as before with both installed.
(With ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``, load it with
``-p memscope.integrations.pytest_plugin``.)

``pytest --memscope [--memscope-dir DIR] [--memscope-report]``
    traces the whole session (from session start to finish) into the log ``DIR/events``
    (default ``MemoryAnalysis/pytest-<time>/``) and says where it is at the end;
    ``--memscope-report`` also writes the six analysis files and the reports into ``DIR``.
    The session's embedded broker starts in the background
    (:mod:`memscope.integrations.early_broker`) while collection and the first tests run; when
    ``--memscope`` is on the ``pytest`` command line, as soon as pytest loads this plugin
    (:mod:`memscope.integrations.pytest_early`).

``@pytest.mark.limit_memory("24 MB", current_thread_only=False)``
    fails the test when the memory it allocated peaked above the limit: the highest total of
    the blocks allocated during the test that were alive at the same time (with
    ``current_thread_only``: allocated by the thread that ran the test).

``@pytest.mark.limit_leaks("1 MB", filter_fn=None, current_thread_only=False)``
    fails the test when more than the limit, allocated by the test's own code (blocks whose
    allocation stack includes the test function), is still alive when the test ends (after a
    ``gc.collect()``). ``filter_fn(stack)`` (pytest-memray's): a stack for which it returns
    False is not counted. (pytest-memray applies its limit to each allocation site; memscope
    to their total.)

pytest-memray's options ``--stacks N`` (frames shown per site), ``--most-allocations N``
(the N marked tests that allocated most, listed at the end; 0: all) and ``--fail-on-increase``
(a ``limit_memory`` test whose peak grew since its last run fails) mean the same with
``--memscope`` (:mod:`memscope.integrations.pytest_compat`).

Sizes are a number with an optional unit: ``B``, ``KB``/``KiB``, ``MB``/``MiB``,
``GB``/``GiB`` (all powers of 1024, as memray's markers read them); a bad one is a usage
error at collection. The figures come from the tracer's own events, measured in the test
process right after the test (:mod:`memscope.integrations.pytest_tap`: no broker round trip);
when tracing was started by someone else (``memscope run pytest --memscope``), from the log,
read by one warm helper process per session (:mod:`memscope.integrations.pytest_window`). They
are shown in the test's report section ``memscope`` and in the failure message with the top
allocation sites.
"""

from __future__ import annotations

import gc
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from memscope.units import human_bytes, parse_size

#: Seconds a per-test measurement may take before the test fails saying so.
MEASURE_TIMEOUT_S = 120.0
#: Allocation sites listed in a failure message.
TOP_SITES = 5


@dataclass
class _State:
    """The plugin's per-session state (kept in ``config.stash``)."""

    run_dir: Path | None = None  # where the log goes when this plugin started tracing
    broker: Any = None  # the EarlyBroker this plugin started (None: someone else's broker)
    started: bool = False  # this plugin called memscope.init()
    disabled: bool = False  # MEMSCOPE_DISABLE is set: markers cannot be checked
    messages: list[str] = field(default_factory=list)
    helper: subprocess.Popen[str] | None = None  # the pytest_window process
    tap: Any = None  # the WindowTap of the session this plugin started (pytest_tap)
    peaks: dict[str, int] = field(default_factory=dict)  # measured test -> its peak


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """``--memscope``, ``--memscope-dir``, ``--memscope-report`` (and pytest-memray's)."""
    group = parser.getgroup("memscope", "memory analysis with memscope")
    group.addoption(
        "--memscope",
        action="store_true",
        default=False,
        help="trace the test session into a memscope log and check the "
        "limit_memory / limit_leaks markers",
    )
    group.addoption(
        "--memscope-dir",
        metavar="DIR",
        default=None,
        help="the run directory (log in DIR/events; default MemoryAnalysis/pytest-<time>/)",
    )
    group.addoption(
        "--memscope-report",
        action="store_true",
        default=False,
        help="with --memscope: also write the analysis files and reports into "
        "the run directory at the end",
    )
    from memscope.integrations.pytest_compat import add_options

    add_options(group, pluginmanager)
    if "--memscope" in sys.argv:  # the broker's start-up overlaps with pytest's own
        from memscope.integrations import pytest_early

        pytest_early.start_from_argv()


def pytest_unconfigure(config: pytest.Config) -> None:
    """A broker started early for a session that never started is stopped."""
    if "memscope.integrations.pytest_early" in sys.modules:
        from memscope.integrations import pytest_early

        pytest_early.discard()


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers; nothing else happens here."""
    config.addinivalue_line(
        "markers",
        "limit_memory(size, current_thread_only=False): with --memscope, fail if "
        "the test's allocations peak above size (e.g. '24 MB')",
    )
    config.addinivalue_line(
        "markers",
        "limit_leaks(size, filter_fn=None, current_thread_only=False): with "
        "--memscope, fail if more than size allocated by the test's own code is still alive "
        "when it ends (e.g. '1 MB')",
    )
    config.stash[_STATE] = _State()


def _active(config: pytest.Config) -> bool:
    return bool(config.getoption("memscope"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--memscope``: a marker with a bad size or keyword is a usage error, up front."""
    if not _active(config):
        return
    for item in items:
        _limits(item)


def _tracing_now() -> bool:
    from memscope.api import tracker as api

    return api._session is not None


def _start(config: pytest.Config, state: _State) -> bool:
    """Start tracing for the session unless it is on already; False when disabled."""
    import memscope
    from memscope.api import tracker as api

    if state.disabled:
        return False
    if _tracing_now():
        return True
    if state.started:  # tracing was stopped by someone else; do not restart it
        return False
    from memscope.config import load_settings

    if load_settings().broker_address:  # a standalone broker: its log, wherever it is
        _add_tap(state)
        memscope.init()
        state.started = True
        state.disabled = api._session is None
        if state.disabled:
            _remove_tap(state)
        return not state.disabled
    from memscope.integrations import pytest_early

    if config.getoption("memscope_dir"):
        state.run_dir = Path(config.getoption("memscope_dir"))
    else:
        from memscope.producer.rundir import default_run_dir

        state.run_dir = pytest_early.run_dir() or default_run_dir("pytest")
    settings = load_settings()
    state.started = True
    if settings.disable:  # MEMSCOPE_DISABLE=1
        memscope.init()
        state.disabled = True
        return False
    from memscope.integrations.early_broker import EarlyBroker

    # The broker starts on a thread while the session is traced already (see early_broker),
    # unless it was started when pytest loaded this plugin (pytest_early).
    events = str(state.run_dir.resolve() / "events")
    state.broker = pytest_early.take(events) or EarlyBroker(events, settings)
    _add_tap(state)
    memscope.init(broker_address=state.broker.address, log_dir=events)
    if api._session is None:
        _remove_tap(state)
        state.disabled = True
        return False
    return True


def _add_tap(state: _State) -> None:
    """Measure in this process: a tap that sees every drain of the session about to start."""
    from memscope.integrations.pytest_tap import WindowTap
    from memscope.producer import session

    state.tap = WindowTap()
    session.taps.append(state.tap)


def _remove_tap(state: _State) -> None:
    from memscope.producer import session

    if state.tap in session.taps:
        session.taps.remove(state.tap)
    state.tap = None


def _tap(state: _State) -> Any:
    """The session's tap while it works (else None: the helper measures from the log)."""
    from memscope.producer import session

    return state.tap if state.tap is not None and state.tap in session.taps else None


def _log_dir(state: _State) -> str:
    """The session's log directory, once its broker answers (events are durable there)."""
    from memscope.api import tracker as api

    if state.broker is not None:
        state.broker.ready()
    return api.get_global_tracker()._log()


def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``--memscope``: start tracing the session."""
    config = session.config
    state = config.stash[_STATE]
    if _active(config):
        _start(config, state)  # marked tests are measured in this process (pytest_tap)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the tracing this plugin started; report."""
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    _stop_helper(state)
    _remove_tap(state)
    if not state.started:
        return
    if state.disabled:
        state.messages.append("memscope: tracing is disabled (MEMSCOPE_DISABLE): no log")
        return
    import memscope

    if state.broker is not None:
        try:
            state.broker.ready()  # the final batch must reach it before it stops
        except RuntimeError as exc:
            state.messages.append(f"memscope: no log: {exc}")
    memscope.shutdown()
    if state.broker is not None:
        state.broker.stop()
    if state.run_dir is None:
        from memscope.config import load_settings

        state.messages.append(
            f"memscope: the session's events went to the broker at {load_settings().broker_address}"
        )
        return
    events = state.run_dir / "events"
    state.messages.append(f"memscope: the session's log is {events}")
    if config.getoption("memscope_report"):
        from memscope.analyzers import run_all
        from memscope.exporters import write_reports

        run_all(events, state.run_dir)
        write_reports(state.run_dir, state.run_dir)
        state.messages.append(
            f"memscope: analysis files and reports in {state.run_dir} "
            f"(dashboard: {state.run_dir / 'dashboard.html'})"
        )
    else:
        state.messages.append(
            f"memscope: reports with `memscope analyze {state.run_dir}` and "
            f"`memscope report {state.run_dir}`, or SQL with `memscope query {state.run_dir} "
            '"select * from stacks limit 10"`'
        )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The tests that allocated most (``--most-allocations``); where the session's log is."""
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    if state.peaks:
        from memscope.integrations.pytest_compat import option

        most = int(option(config, "most_allocations"))
        ranked = sorted(state.peaks.items(), key=lambda kv: (-kv[1], kv[0]))
        terminalreporter.write_sep("=", "memscope: peak memory of the measured tests")
        for nodeid, peak in ranked[:most] if most > 0 else ranked:
            terminalreporter.write_line(f"{human_bytes(peak):>10}  {nodeid}")
    for line in state.messages:
        terminalreporter.write_line(line)


def _limits(item: pytest.Item) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each marker of the test: ``name -> (bytes, its keywords)``; usage errors for bad ones."""
    from memscope.integrations.pytest_compat import MARKER_KEYWORDS, marker_keywords

    limits: dict[str, tuple[int, dict[str, Any]]] = {}
    for name in MARKER_KEYWORDS:
        marker = item.get_closest_marker(name)
        if marker is None:
            continue
        if len(marker.args) != 1:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{name} takes one size, like {name}('24 MB')"
            )
        try:
            size = parse_size(marker.args[0])
        except ValueError as exc:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{name}: {exc}") from None
        limits[name] = (size, marker_keywords(item.nodeid, name, dict(marker.kwargs)))
    return limits


def _test_code(item: pytest.Item) -> tuple[str, str]:
    """The test function's ``(co_filename, co_qualname)``: how its frames appear in stacks."""
    import inspect

    func = inspect.unwrap(getattr(item, "obj", None))  # type: ignore[arg-type]
    code = getattr(func, "__code__", None)
    if code is None:
        return str(getattr(item, "path", "")), item.name
    return code.co_filename, code.co_qualname


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """With ``--memscope``: check a marked test's limits against the events it produced."""
    if not _active(item.config):
        return (yield)
    limits = _limits(item)
    state = item.config.stash[_STATE]
    if not limits or not _start(item.config, state):
        if limits:
            item.add_report_section(
                "call",
                "memscope",
                "tracing is disabled (MEMSCOPE_DISABLE); memory limits were not checked",
            )
            item.warn(
                pytest.PytestWarning(
                    "memscope: tracing is disabled (MEMSCOPE_DISABLE); "
                    f"{', '.join(limits)} not checked"
                )
            )
        return (yield)
    from memscope.producer import _tracer

    threaded = any(kw["current_thread_only"] for _, kw in limits.values())
    tid = _tracer.thread_id() if threaded else None
    # Leaks are what survives a collection (before: the previous tests' garbage goes first).
    # A peak counts only the test's own blocks, so limit_memory needs no collection.
    collect = "limit_leaks" in limits
    tap = _tap(state)
    if tap is not None:
        tap.arm()  # before t0: every event of the window is drained after this
    try:
        if collect:
            gc.collect()
        t0 = time.monotonic_ns()
        result = yield  # a failing test fails as it is; its limits are not checked
        if collect:
            gc.collect()
        t1 = time.monotonic_ns()
        measured = _measure_all(item, state, tap, limits, (t0, t1), tid)
    finally:
        if tap is not None:
            tap.disarm()
    failures = []
    for name, (limit, keywords) in limits.items():
        figures = measured[tid if keywords["current_thread_only"] else None]
        if name == "limit_memory":
            state.peaks[item.nodeid] = int(figures["peak_bytes"])
            item.add_report_section("call", "memscope", _summary(figures))
        failures += _check(item, name, limit, keywords, figures)
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    return result


def _helper(state: _State, log: str) -> subprocess.Popen[str]:
    """The session's pytest_window process (started on first use, untraced)."""
    from memscope.api import offline

    if state.helper is None or state.helper.poll() is not None:
        state.helper = subprocess.Popen(
            [sys.executable, "-m", "memscope.integrations.pytest_window", log],
            env=offline.untraced_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
    return state.helper


def _stop_helper(state: _State) -> None:
    helper, state.helper = state.helper, None
    if helper is None:
        return
    try:
        helper.communicate(timeout=10)  # closes its stdin: it ends its loop
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.communicate()


def _measure_all(
    item: pytest.Item,
    state: _State,
    tap: Any,
    limits: dict[str, tuple[int, dict[str, Any]]],
    window: tuple[int, int],
    tid: int | None,
) -> dict[int | None, dict[str, Any]]:
    """The figures of each thread filter the markers ask for (one request per filter)."""
    t0, t1 = window
    measured: dict[int | None, dict[str, Any]] = {}
    for _, keywords in limits.values():
        thread = tid if keywords["current_thread_only"] else None
        if thread not in measured:
            measured[thread] = (
                _measure_here(item, tap, t0, t1, thread)
                if tap is not None
                else _measure(item, state, t0, t1, thread)
            )
    return measured


def _measure_here(item: pytest.Item, tap: Any, t0: int, t1: int, tid: int | None) -> dict[str, Any]:
    """The window's figures from the session's tap, this thread paused (untraced work)."""
    from memscope.api import tracker as api

    session = api._session
    if session is None:
        pytest.fail(
            f"memscope: could not measure {item.nodeid}: tracing was stopped", pytrace=False
        )
    filename, function = _test_code(item)
    token = session.capture.pause()
    try:
        if not session.publisher.drained(MEASURE_TIMEOUT_S):
            pytest.fail(
                f"memscope: could not measure {item.nodeid}: the tracer's events "
                f"were not drained in {MEASURE_TIMEOUT_S:.0f} s",
                pytrace=False,
            )
        answer: dict[str, Any] = tap.answer(t0, t1, filename, function, tid)
    finally:
        session.capture.resume(token)
    return answer


def _measure(item: pytest.Item, state: _State, t0: int, t1: int, tid: int | None) -> dict[str, Any]:
    try:
        log = _log_dir(state)  # every event so far is durable in the log
    except RuntimeError as exc:
        pytest.fail(f"memscope: could not measure {item.nodeid}: {exc}", pytrace=False)
    filename, function = _test_code(item)
    request = {
        "pid": os.getpid(),
        "t0": t0,
        "t1": t1,
        "filename": filename,
        "function": function,
        "tid": tid,
    }
    helper = _helper(state, log)
    assert helper.stdin is not None and helper.stdout is not None
    try:
        helper.stdin.write(json.dumps(request) + "\n")
        helper.stdin.flush()
    except BrokenPipeError:
        pass  # it died: its stderr says why, below
    ready, _, _ = select.select([helper.stdout], [], [], MEASURE_TIMEOUT_S)
    line = helper.stdout.readline() if ready else ""
    if not ready:
        helper.kill()
        pytest.fail(
            f"memscope: measuring {item.nodeid} took over {MEASURE_TIMEOUT_S:.0f} s", pytrace=False
        )
    answer: dict[str, Any] = json.loads(line) if line else {}
    if not line:
        reason = (helper.stderr.read() if helper.stderr else "").strip().splitlines()[-1:]
        answer = {"error": reason[0] if reason else "the helper process ended"}
    if "error" in answer:
        pytest.fail(f"memscope: could not measure {item.nodeid}: {answer['error']}", pytrace=False)
    return answer


def _frame_text(frame: list[Any], root: Path) -> str:
    function, filename, lineno = frame
    return f"{str(filename).removeprefix(str(root) + os.sep)}:{lineno} {function}"


def _sites(groups: list[dict[str, Any]], root: Path, frames: int) -> str:
    """One line per site (its innermost frame; ``frames`` of them, indented below)."""
    lines = []
    for group in groups[:TOP_SITES]:
        stack = group["frames"] or [["<no Python frame>", "", 0]]
        first, *rest = stack[:frames]
        site = _frame_text(first, root) if group["frames"] else "<no Python frame>"
        lines.append(
            f"    {human_bytes(group['bytes']):>10} in {group['blocks']:>6} block"
            f"{'s' if group['blocks'] != 1 else ' '}  {site}"
        )
        lines += [f"{'':32}called from {_frame_text(f, root)}" for f in rest]
    return "\n".join(lines)


def _summary(figures: dict[str, Any]) -> str:
    return f"peak of memory allocated during the test: {human_bytes(figures['peak_bytes'])}\n"


def _check(
    item: pytest.Item, name: str, limit: int, keywords: dict[str, Any], figures: dict[str, Any]
) -> list[str]:
    from memscope.integrations.pytest_compat import option, passes

    root = item.config.rootpath
    frames = int(option(item.config, "stacks"))
    if name == "limit_memory":
        peak = int(figures["peak_bytes"])
        failures = _increase(item, peak)
        if peak > limit:
            failures.append(
                f"memscope: {item.name} allocated up to {human_bytes(peak)} at once, over its "
                f"limit_memory of {human_bytes(limit)}.\nLargest allocation sites alive at "
                f"that peak:\n{_sites(figures['peak_groups'], root, frames)}"
            )
        return failures
    groups = [g for g in figures["leak_groups"] if passes(keywords["filter_fn"], g["frames"])]
    leaked = sum(int(g["bytes"]) for g in groups)
    blocks = sum(int(g["blocks"]) for g in groups)
    item.add_report_section(
        "call",
        "memscope",
        f"left allocated by the test's own code: {human_bytes(leaked)} in {blocks} blocks\n",
    )
    if leaked <= limit:
        return []
    return [
        f"memscope: {item.name} left {human_bytes(leaked)} in {blocks} blocks allocated "
        f"by its own code, over its limit_leaks of {human_bytes(limit)}.\n"
        f"Largest sites of the blocks still alive:\n{_sites(groups, root, max(frames, 5))}"
    ]


def _increase(item: pytest.Item, peak: int) -> list[str]:
    """``--fail-on-increase``: a failure when the peak grew since the last run (pytest cache)."""
    from memscope.integrations.pytest_compat import option

    cache = getattr(item.config, "cache", None)
    if cache is None:
        return []
    key = f"memscope/{item.nodeid}"
    previous = cache.get(key, {}).get("peak_bytes")
    cache.set(key, {"peak_bytes": peak})
    if option(item.config, "fail_on_increase") and previous is not None and peak > previous:
        return [
            f"memscope: {item.name} allocated up to {human_bytes(peak)} at once, more than "
            f"the {human_bytes(previous)} of its last run (--fail-on-increase)"
        ]
    return []
