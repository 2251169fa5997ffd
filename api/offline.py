"""Read-side work for the API (stats, types, exports), done in a helper process.

The traced process never imports DuckDB, pyarrow or the exporters' chart libraries for
``Tracker.get_stats()`` or the ``export_*`` methods: their imports and work would otherwise be
traced as the program's own memory. :func:`call` runs ``python -m memscope.api.offline``
with tracing disabled and the ``memscope run`` bootstrap removed from ``PYTHONPATH``; the helper
answers one request as JSON on stdout, or exits non-zero with the reason on stderr.

Requests (``argv[1:]``):

* ``stats LOG PID`` -- :func:`memscope.analyzers.memstats.process_stats` for the process.
  with :func:`memscope.analyzers.seed_api.seed_figures` (peak blocks, leaks once it ended).
* ``by-type LOG PID`` -- tracked variables of the process alive at the end of the log, by type.
* ``active LOG PID`` / ``history LOG PID`` -- its blocks alive at the end of the log / every
  block it allocated (:mod:`memscope.analyzers.seed_api`).
* ``export LOG KIND OUT`` -- ``KIND`` is ``analysis`` (the six JSON files into the directory
  ``OUT``) or one of :data:`EXPORT_FILES` (that report, written to the file ``OUT``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memscope.config.settings import DISABLE_ENV

#: Export kind -> the file :func:`memscope.exporters.write_reports` writes for it.
EXPORT_FILES = {
    "memory_svg": "memory_analysis.svg",
    "lifecycle_svg": "lifecycle_timeline.svg",
    "snapshot_json": "memory_snapshot.json",
    "html": "dashboard.html",
}

#: Export kind -> the analyzers its exporter reads (the dashboard reads all six).
EXPORT_NEEDS = {
    "memory_svg": ("memory", "lifecycle", "performance"),
    "lifecycle_svg": ("memory", "lifecycle", "performance"),
    "snapshot_json": ("memory", "lifecycle", "performance"),
}

#: Set by ``memscope run`` in the traced program's environment: its bootstrap directory.
BOOTSTRAP_ENV = "MEMSCOPE_BOOTSTRAP_DIR"


class OfflineError(RuntimeError):
    """The helper process failed; the message is its explanation."""


def untraced_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` with tracing disabled and the ``memscope run`` bootstrap taken out."""
    env = dict(os.environ if environ is None else environ)
    env[DISABLE_ENV] = "1"
    bootstrap = env.pop(BOOTSTRAP_ENV, "")
    if bootstrap and env.get("PYTHONPATH"):
        parts = [p for p in env["PYTHONPATH"].split(os.pathsep) if p and p != bootstrap]
        if parts:
            env["PYTHONPATH"] = os.pathsep.join(parts)
        else:
            del env["PYTHONPATH"]
    return env


def call(*request: str, timeout: float = 300.0) -> Any:
    """Run one request in the helper process; return its JSON answer."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "memscope.api.offline", *request],
            env=untraced_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OfflineError(
            f"memscope: {request[0]} did not finish within {timeout:.0f} s; "
            f"try `memscope analyze {request[1]}` from a shell"
        ) from None
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no message"
        raise OfflineError(f"memscope: {request[0]} failed: {reason}")
    return json.loads(done.stdout)


# -- the helper process ----------------------------------------------------------------------


def _connect(log: str) -> Any:
    from memscope.analyzers.runner import connect_analyzed

    # The analysis state (from the log's checkpoint, folding only what is new).
    return connect_analyzed(log)


def _stats(log: str, pid: str) -> Any:
    from memscope.analyzers.memstats import process_stats
    from memscope.analyzers.seed_api import seed_figures

    con = _connect(log)
    return {**process_stats(con, int(pid)), **seed_figures(con, int(pid))}


def _active(log: str, pid: str) -> Any:
    from memscope.analyzers.seed_api import active_allocations

    return active_allocations(_connect(log), int(pid))


def _history(log: str, pid: str) -> Any:
    from memscope.analyzers.seed_api import allocation_history
    from memscope.analyzers.views import connect

    # The matched blocks (the allocations view) and the state (for the stack tree).
    return allocation_history(connect(log, raw_memory=False, matched=True, state=True), int(pid))


def _by_type(log: str, pid: str) -> Any:
    con = _connect(log)
    rows = con.execute(
        "SELECT type_name, sum(deep_size)::BIGINT, count(*)::BIGINT FROM variables "
        "WHERE pid = ? AND died_ts_ns IS NULL GROUP BY type_name ORDER BY 2 DESC, 1",
        [int(pid)],
    ).fetchall()
    return [list(row) for row in rows]


def _export(log: str, kind: str, out: str) -> Any:
    from memscope.analyzers import run_all

    if kind == "analysis":
        paths = run_all(log, Path(out))
        return [str(p) for p in paths]
    if kind not in EXPORT_FILES:
        raise ValueError(f"unknown export kind {kind!r}")
    from memscope.exporters import EXPORTERS, exporter, load_reports

    chosen = [e for e in (exporter(m, c) for m, c in EXPORTERS) if e.filename == EXPORT_FILES[kind]]
    if not chosen:
        raise ValueError(f"this build has no exporter writing {EXPORT_FILES[kind]}")
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memscope-export-") as tmp:
        run_all(log, Path(tmp), only=EXPORT_NEEDS.get(kind))
        built = chosen[0].build(load_reports(tmp))
        partial = target.with_name(f".{target.name}.partial")
        with open(partial, "wb") as fh:
            chosen[0].render(built, fh)
        os.replace(partial, target)
    return [str(target)]


_OPS: dict[str, tuple[Callable[..., Any], int]] = {
    "stats": (_stats, 2),
    "by-type": (_by_type, 2),
    "active": (_active, 2),
    "history": (_history, 2),
    "export": (_export, 3),
}


def main(argv: list[str] | None = None) -> int:
    """The helper's entry point: answer one request on stdout as JSON."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in _OPS or len(args) - 1 != _OPS[args[0]][1]:
        print(
            f"usage: stats|by-type|active|history LOG PID | export LOG KIND OUT (got {args})",
            file=sys.stderr,
        )
        return 2
    func, _ = _OPS[args[0]]
    try:
        result = func(*args[1:])
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
