"""The embedded broker of ``pytest --memscope``, started when the plugin is imported.

pytest imports its plugins well before the session starts (entry points, other plugins,
option parsing, configuration: 0.1-0.4 s on a loaded machine). When ``--memscope`` is on the
command line, :func:`start_from_argv` starts the session's broker at that moment
(:class:`memscope.integrations.early_broker.EarlyBroker`), so its start-up (a new interpreter
importing pyarrow) overlaps with all of it; the plugin then :func:`take` s it at session
start if it writes the log the session chose, and :func:`discard` stops it otherwise (an
option read differently, ``--help``, a usage error before the session).

Nothing is started when tracing is on already (``memscope run pytest``), with a standalone
broker (``broker_address``) or with tracing disabled: the plugin's own path decides then.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_early: dict[str, Any] = {}  # "events": str, "broker": EarlyBroker, "made": Path | None


def _option(argv: Sequence[str], name: str) -> str | None:
    """The value of ``name VALUE`` or ``name=VALUE`` in ``argv`` (the last one wins)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
    return value


def _pytest_command_line() -> list[str] | None:
    """``sys.argv``'s arguments when this process is the ``pytest`` command, else None.

    (A program calling ``pytest.main(args)`` passes arguments that are not known here.)
    """
    program = sys.argv[0] if sys.argv else ""
    if Path(program).name in ("pytest", "py.test") or program.replace("\\", "/").endswith(
        "pytest/__main__.py"
    ):
        return list(sys.argv[1:])
    return None


def start_from_argv(argv: Sequence[str] | None = None) -> None:
    """Start the broker now when ``argv`` (default: the pytest command line) has --memscope."""
    args = _pytest_command_line() if argv is None else list(argv)
    if args is None or "--memscope" not in args or _early:
        return
    api = sys.modules.get("memscope.api.tracker")
    if api is not None and getattr(api, "_session", None) is not None:
        return  # traced already (memscope run): the plugin uses that session
    from memscope.config import load_settings

    try:
        settings = load_settings()
    except (ValueError, OSError):
        return  # the plugin reports it at session start
    if settings.disable or settings.broker_address:
        return
    given = _option(args, "--memscope-dir")
    if given is not None:
        run_dir = Path(given)
    else:
        from memscope.producer.rundir import default_run_dir

        run_dir = default_run_dir("pytest")
    made = None  # the outermost directory the broker will create (removed if not taken)
    for path in (run_dir.absolute(), *run_dir.absolute().parents):
        if path.exists():
            break
        made = path
    from memscope.integrations.early_broker import EarlyBroker

    events = str(run_dir.resolve() / "events")
    _early.update(events=events, broker=EarlyBroker(events, settings), made=made, run_dir=run_dir)


def run_dir() -> Path | None:
    """The run directory of the broker started early (None: none was)."""
    return _early.get("run_dir")


def take(events: str) -> Any:
    """The broker started early when it writes ``events`` (the caller's from now on).

    None when there is none, or it writes elsewhere (it is stopped then).
    """
    if not _early:
        return None
    if _early["events"] != events:
        discard()
        return None
    broker = _early["broker"]
    _early.clear()
    return broker


def discard() -> None:
    """Stop a broker started early that nobody took; remove the run directory it made."""
    if not _early:
        return
    broker, made = _early["broker"], _early["made"]
    _early.clear()
    broker.stop()
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
