"""memscope's pytest plugin: trace a test session, and limit a test's memory or its leaks.

Registered through the ``pytest11`` entry point ``memscope.producer.pytest_plugin`` (named
like the module, so ``-p memscope.producer.pytest_plugin`` never registers it twice and
``-p no:memscope.producer.pytest_plugin`` switches it off), so it is loaded by every pytest
in an environment where memscope is installed -- and does nothing there unless asked: no
tracing, no threads, no imports beyond the standard library until ``--memscope`` is given or
a test carries one of the markers. (With ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``, load it with
``-p memscope.producer.pytest_plugin``.)

``pytest --memscope [--memscope-dir DIR] [--memscope-report]``
    traces the whole session (from session start to finish) into the log ``DIR/events``
    (default ``MemoryAnalysis/pytest-<time>/``) and says where it is at the end;
    ``--memscope-report`` also writes the six analysis files and the reports into ``DIR``.

``@pytest.mark.limit_memory("24 MB")``
    fails the test when the memory it allocated peaked above the limit: the highest total of
    the blocks allocated during the test that were alive at the same time.

``@pytest.mark.limit_leaks("1 MB")``
    fails the test when more than the limit, allocated by the test's own code (blocks whose
    allocation stack includes the test function), is still alive when the test ends (after a
    ``gc.collect()``).

Sizes are a number with an optional unit: ``B``, ``KB``/``KiB``, ``MB``/``MiB``,
``GB``/``GiB`` (all powers of 1024, as memray's markers read them). A marked test starts
tracing for the session if ``--memscope`` did not; the figures come from the events in the
log (:mod:`memscope.producer.pytest_measure`, run in a helper process). They are shown in the
test's report section ``memscope`` and in the failure message with the top allocation sites.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_UNITS = {
    "": 1, "B": 1,
    "K": 1024, "KB": 1024, "KIB": 1024,
    "M": 1024**2, "MB": 1024**2, "MIB": 1024**2,
    "G": 1024**3, "GB": 1024**3, "GIB": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")
_MARKERS = ("limit_memory", "limit_leaks")
#: Seconds a per-test measurement may take before the test fails saying so.
MEASURE_TIMEOUT_S = 120.0


def parse_size(value: object) -> int:
    """Bytes from ``"24 MB"``, ``"1.5GiB"``, ``"512"`` or an int.

    Raises:
        ValueError: not a size (the message says what a size looks like).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"memscope: {value!r} is not a memory size; write a number and a unit, "
            "like '24 MB', '512 KiB' or '1GB'"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(n: float) -> str:
    """``1.5 MiB`` style."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


@dataclass
class _State:
    """The plugin's per-session state (kept in ``config.stash``)."""

    run_dir: Path | None = None  # where the log goes when this plugin started tracing
    temporary: bool = False  # run_dir is a temporary directory (markers without --memscope)
    started: bool = False  # this plugin called memscope.init()
    disabled: bool = False  # MEMSCOPE_DISABLE is set: markers cannot be checked
    messages: list[str] = field(default_factory=list)


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--memscope``, ``--memscope-dir`` and ``--memscope-report``."""
    group = parser.getgroup("memscope", "memory analysis with memscope")
    group.addoption("--memscope", action="store_true", default=False,
                    help="trace the test session into a memscope log")
    group.addoption("--memscope-dir", metavar="DIR", default=None,
                    help="the run directory (log in DIR/events; default "
                         "MemoryAnalysis/pytest-<time>/)")
    group.addoption("--memscope-report", action="store_true", default=False,
                    help="with --memscope: also write the analysis files and reports into "
                         "the run directory at the end")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers; nothing else happens here."""
    config.addinivalue_line(
        "markers", "limit_memory(size): fail if the test's allocations peak above size "
        "(e.g. '24 MB'); measured by memscope")
    config.addinivalue_line(
        "markers", "limit_leaks(size): fail if more than size allocated by the test's own "
        "code is still alive when it ends (e.g. '1 MB'); measured by memscope")
    config.stash[_STATE] = _State()


def _tracing_now() -> bool:
    from memscope.producer import api

    return api._session is not None


def _start(config: pytest.Config, state: _State) -> bool:
    """Start tracing for the session unless it is on already; False when disabled."""
    import memscope
    from memscope.producer import api

    if state.disabled:
        return False
    if _tracing_now():
        return True
    if state.started:  # tracing was stopped by someone else; do not restart it
        return False
    from memscope.config import load_settings

    if load_settings().broker_address:  # a standalone broker: its log, wherever it is
        memscope.init()
        state.started = True
        state.disabled = api._session is None
        return not state.disabled
    if config.getoption("memscope_dir"):
        state.run_dir = Path(config.getoption("memscope_dir"))
    elif config.getoption("memscope"):
        from memscope.producer.rundir import default_run_dir

        state.run_dir = default_run_dir("pytest")
    else:
        state.run_dir = Path(tempfile.mkdtemp(prefix="memscope-pytest-"))
        state.temporary = True
    memscope.init(log_dir=str(state.run_dir.resolve() / "events"))
    state.started = True
    if api._session is None:  # MEMSCOPE_DISABLE=1
        state.disabled = True
        return False
    return True


def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``--memscope``: start tracing the session."""
    config = session.config
    if config.getoption("memscope"):
        _start(config, config.stash[_STATE])


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the tracing this plugin started; report or clean up."""
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None or not state.started:
        return
    import memscope

    memscope.shutdown()
    if state.temporary and state.run_dir is not None:
        shutil.rmtree(state.run_dir, ignore_errors=True)
        return
    if state.run_dir is None:
        from memscope.config import load_settings

        state.messages.append("memscope: the session's events went to the broker at "
                              f"{load_settings().broker_address}")
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
            f"(dashboard: {state.run_dir / 'dashboard.html'})")
    else:
        state.messages.append(
            f"memscope: reports with `memscope analyze {state.run_dir}` and "
            f"`memscope report {state.run_dir}`, or SQL with `memscope query {state.run_dir} "
            "\"select * from stacks limit 10\"`")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say where the session's log is."""
    state = config.stash.get(_STATE, None)
    for line in state.messages if state else []:
        terminalreporter.write_line(line)


def _limits(item: pytest.Item) -> dict[str, int]:
    limits: dict[str, int] = {}
    for name in _MARKERS:
        marker = item.get_closest_marker(name)
        if marker is None:
            continue
        if len(marker.args) != 1 or marker.kwargs:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{name} takes one size, like {name}('24 MB')")
        limits[name] = parse_size(marker.args[0])
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
    """Time-box a marked test and check its limits against the events it produced."""
    limits = _limits(item)
    state = item.config.stash[_STATE]
    if not limits or not _start(item.config, state):
        if limits:
            item.add_report_section("call", "memscope", "tracing is disabled "
                                    "(MEMSCOPE_DISABLE); memory limits were not checked")
            item.warn(pytest.PytestWarning(
                "memscope: tracing is disabled (MEMSCOPE_DISABLE); "
                f"{', '.join(limits)} not checked"))
        return (yield)
    gc.collect()
    t0 = time.monotonic_ns()
    result = yield  # a failing test fails as it is; its limits are not checked
    gc.collect()
    t1 = time.monotonic_ns()
    figures = _measure(item, t0, t1)
    item.add_report_section("call", "memscope", _summary(figures))
    failures = _check(item, limits, figures)
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    return result


def _measure(item: pytest.Item, t0: int, t1: int) -> dict[str, Any]:
    from memscope.producer import api, offline

    log = api.get_global_tracker()._log()  # every event so far is durable in the log
    filename, function = _test_code(item)
    request = [str(os.getpid()), str(t0), str(t1), filename, function]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "memscope.producer.pytest_measure", log, *request],
            env=offline.untraced_env(), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=MEASURE_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"memscope: measuring {item.nodeid} took over {MEASURE_TIMEOUT_S:.0f} s",
                    pytrace=False)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or ["no message"]
        pytest.fail(f"memscope: could not measure {item.nodeid}: {reason[0]}", pytrace=False)
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def _sites(sites: list[dict[str, Any]], root: Path) -> str:
    """One line per site; files under the rootdir shown relative to it."""
    prefix = str(root) + os.sep
    return "\n".join(
        f"    {format_size(s['bytes']):>10} in {s['blocks']:>6} block"
        f"{'s' if s['blocks'] != 1 else ' '}  {s['site'].removeprefix(prefix)}" for s in sites)


def _summary(figures: dict[str, Any]) -> str:
    return (f"peak of memory allocated during the test: {format_size(figures['peak_bytes'])}\n"
            f"left allocated by the test's own code: {format_size(figures['leaked_bytes'])} "
            f"in {figures['leaked_blocks']} blocks\n")


def _check(item: pytest.Item, limits: dict[str, int], figures: dict[str, Any]) -> list[str]:
    failures = []
    root = item.config.rootpath
    limit = limits.get("limit_memory")
    if limit is not None and figures["peak_bytes"] > limit:
        failures.append(
            f"memscope: {item.name} allocated up to {format_size(figures['peak_bytes'])} at "
            f"once, over its limit_memory of {format_size(limit)}.\n"
            f"Largest allocation sites alive at that peak:\n{_sites(figures['peak_sites'], root)}")
    limit = limits.get("limit_leaks")
    if limit is not None and figures["leaked_bytes"] > limit:
        failures.append(
            f"memscope: {item.name} left {format_size(figures['leaked_bytes'])} in "
            f"{figures['leaked_blocks']} blocks allocated by its own code, over its "
            f"limit_leaks of {format_size(limit)}.\n"
            f"Largest sites of the blocks still alive:\n{_sites(figures['leak_sites'], root)}")
    return failures
