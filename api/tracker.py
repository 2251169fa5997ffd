"""The public Python API: ``init``, ``shutdown``, ``track_var``, ``scope``, the tracker.

::

    import memscope
    memscope.init()                      # embedded broker unless MEMSCOPE_BROKER_ADDRESS is set
    data = [1, 2, 3]
    memscope.track_var(data)             # recorded as "data", list[int]
    with memscope.scope("load"):
        ...
    stats = memscope.get_global_tracker().get_stats()

``MEMSCOPE_DISABLE=1`` (or ``init(disable=True)``) makes ``init`` return at once (and every
later call too: the process stays untraced), ``track_var`` return its argument untouched and
``scope`` do nothing (``bench/bench_api.py`` measures what that costs).

Read-side work first makes every event so far durable in the log: ``get_stats`` is then
computed by the broker; ``get_memory_by_type`` and the ``export_*`` methods run in a helper
process (:mod:`memscope.api.offline`), so none of it is traced as the program's memory.
"""

from __future__ import annotations

import atexit
import gc
import sys
import threading

from memscope.producer import scopes
from memscope.producer.scopes import scope

# Only what a disabled init() needs is imported here; the rest loads when tracing starts
# (every extra module would also slow the program's garbage collections a little).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from os import PathLike
    from pathlib import Path
    from typing import Any, TypeVar

    from memscope.api.results import AllocationInfo, MemoryStats, TypeUsage
    from memscope.producer.session import BrokerLink, Session

    T = TypeVar("T")
    R = TypeVar("R")

__all__ = [
    "AllocationInfo",
    "MemoryStats",
    "Tracker",
    "TypeUsage",
    "get_global_tracker",
    "init",
    "scope",
    "shutdown",
    "track_var",
]

_lock = threading.RLock()
_session: Session | None = None  # the running session
_last: Session | None = None  # the running or last session (the tracker reads its log)
_disabled = False
_atexit_registered = False

#: Seconds that shutdown and the read side wait for the broker.
FLUSH_TIMEOUT_S = 30.0


def _env_disabled() -> bool:
    from memscope.config.settings import disabled_by_environment

    return disabled_by_environment()


def init(**overrides: Any) -> None:
    """Start tracing this process (idempotent).

    Settings come from :func:`memscope.config.load_settings` (defaults, ``MEMSCOPE_CONFIG``,
    ``MEMSCOPE_*`` variables) with ``overrides`` applied, e.g. ``init(mode="sampled")``.
    Without a ``broker_address`` an embedded broker writes the log to ``log_dir`` (default
    ``MemoryAnalysis/<script>-<time>/events``). Tracing stops at :func:`shutdown`, which also
    runs at exit.

    Raises:
        ValueError: an override names an unknown setting or has a bad value.
        RuntimeError: already tracing with different settings, or the broker cannot be reached.
    """
    global _session, _last, _disabled, _atexit_registered
    if _disabled:
        return
    if _session is not None:
        _check_same(_session, overrides)
        return
    if _env_disabled() or overrides.get("disable") is True:
        _disable()
        return
    with _lock:
        if _session is not None:
            return
        from memscope.config import load_settings
        from memscope.producer import forking
        from memscope.producer.session import Session, import_before_tracing

        import_before_tracing("memscope.api.offline", "memscope.api.results")
        settings = load_settings()
        if overrides:
            settings = settings.replace(**overrides)
        if settings.disable:
            _disable()
            return
        link, broker = _connect(settings)
        session = Session(settings, link, broker)
        # Everything that allocates for memscope happens before the hooks go in.
        forking.install(_after_fork_child, shutdown)
        if not _atexit_registered:
            # atexit runs handlers last-in first-out: pyzmq's own handler (registered when
            # zmq.utils.garbage is first imported, which a zero-copy send does) must come
            # before ours, or it shuts zmq down before the final batch is sent.
            __import__("zmq.utils.garbage")
            atexit.register(shutdown)
            _atexit_registered = True
        _resolve_public_names()
        _session = _last = session
        try:
            session.start()
        except BaseException:
            _session = None
            if broker is not None:
                broker.stop()
            raise
        _disabled = False


def _resolve_public_names() -> None:
    """Cache ``memscope.<name>`` now: the first lookup grows a dict, which is not the program's."""
    package = sys.modules["memscope"]
    for name in package.__all__:
        getattr(package, name)


def _disable() -> None:
    """Disabled for the life of this process: later init() calls return at once."""
    global _disabled
    _disabled = True
    scopes.enabled = False


def _check_same(session: Session, overrides: dict[str, Any]) -> None:
    current = session.settings
    differ = {k: v for k, v in overrides.items() if getattr(current, k, object()) != v}
    if differ:
        raise RuntimeError(
            f"memscope is already tracing with other settings ({', '.join(sorted(differ))}); "
            "call memscope.shutdown() before init() with new ones"
        )


def _connect(settings: Any) -> tuple[BrokerLink, Any]:
    from memscope.producer.session import BrokerLink
    from memscope.protocol.addresses import control_address

    if settings.broker_address:
        control = control_address(settings.broker_address)
        return BrokerLink(settings.broker_address, control, settings.log_dir), None
    from memscope.broker import start_embedded
    from memscope.producer.rundir import default_run_dir, program_label

    log_dir = settings.log_dir or str(default_run_dir(program_label()) / "events")
    broker = start_embedded(log_dir, settings=settings)
    return BrokerLink(broker.address, broker.control_address, str(log_dir)), broker


def _after_fork_child() -> None:
    global _lock
    _lock = threading.RLock()  # another thread may have held it at the fork
    session = _session
    if session is not None:
        session.after_fork_child()


def shutdown() -> None:
    """Stop tracing: ship the final batch with this process's exit row, close the socket.

    Safe to call more than once; also runs at interpreter exit. An embedded broker started
    by this process is stopped after it has written everything to the log.
    """
    running = _session
    if running is None:
        return
    token = running.capture.pause()  # memscope's own work from here on
    try:
        _stop()
    finally:
        running.capture.resume(token)


def _stop() -> None:
    global _session
    with _lock:
        session = _session
        _session = None
    if session is None:
        return
    session.stop(FLUSH_TIMEOUT_S)
    if session.owns_broker():
        session.broker.stop()
        log = session.link.log_dir
        print(
            f"memscope: events in {log}; `memscope analyze {log}` writes the analysis, "
            f"`memscope report {log}` the reports",
            file=sys.stderr,
        )


def track_var(obj: T, name: str | None = None) -> T:
    """Record ``obj`` as a tracked variable and return it unchanged.

    The record holds the name (``name``, else the argument's expression at the call site,
    else ``"<expr>"``), the qualified type with inferred element types, shallow and deep size,
    the innermost :func:`scope` (else the calling function), thread, time and the object's
    allocation block, whose free is the variable's death. Tracked objects reachable from
    ``obj`` are listed as contained in it.

    Raises:
        RuntimeError: :func:`init` was never called (with ``MEMSCOPE_DISABLE=1``, nothing
            happens instead).
    """
    session = _session
    if session is None:
        if _disabled or _last is not None:
            return obj
        raise RuntimeError(
            "memscope.track_var() needs tracing: call memscope.init() first "
            "(or set MEMSCOPE_DISABLE=1 to make the calls no-ops)"
        )
    capture = session.capture
    # memscope's own work here (naming, sizing, the row) is not the program's memory: the
    # thread is paused, and the collector too (it could free the program's garbage unseen).
    token = capture.pause()
    collecting = gc.isenabled()
    gc.disable()
    try:
        from memscope.producer.tracking import record

        record(
            obj,
            name,
            sys._getframe(1),
            session.registry,
            session.rows,
            capture.block_address(obj),
            capture.current_stack_id(1),
        )
        capture.pin(obj)  # its free reaches the log in aggregated and sampled modes too
        session.watch_death(obj)  # a list, dict or tuple dies by a free, not onto a free list
    finally:
        if collecting:
            gc.enable()
        capture.resume(token)
    return obj


# -- results ---------------------------------------------------------------------------------


def _untraced(method: Callable[..., R]) -> Callable[..., R]:
    """Run a tracker method with this thread paused: its work is memscope's, not the program's."""

    def wrapper(*args: Any, **kwargs: Any) -> R:
        session = _session
        if session is None:
            return method(*args, **kwargs)
        token = session.capture.pause()
        try:
            return method(*args, **kwargs)
        finally:
            session.capture.resume(token)

    wrapper.__name__ = method.__name__
    wrapper.__qualname__ = method.__qualname__
    wrapper.__doc__ = method.__doc__
    return wrapper


class Tracker:
    """The read side of this process's trace; get it with :func:`get_global_tracker`."""

    __slots__ = ()

    def _session(self) -> Session:
        session = _last
        if session is None:
            if _disabled:
                raise RuntimeError(
                    "memscope: tracing is disabled (MEMSCOPE_DISABLE=1 or init(disable=True)); "
                    "unset it to get stats and reports"
                )
            raise RuntimeError("memscope: call memscope.init() before using the tracker")
        return session

    def _sync(self) -> Session:
        """Make every event of this process so far durable in the log; return the session."""
        session = self._session()
        if not session.stopped:
            seq = session.flush(FLUSH_TIMEOUT_S)
            if seq >= 0:
                with _client(session) as client:
                    client.wait(session.identity.producer_id, seq, timeout_s=FLUSH_TIMEOUT_S)
        return session

    def _log(self) -> str:
        session = self._sync()
        if session.link.log_dir:
            return session.link.log_dir
        if not session.stopped:
            with _client(session) as client:
                log = client.ping().get("log")
            if log:
                return str(log)
        raise RuntimeError(
            "memscope: the log directory of this process's broker is unknown; set "
            "MEMSCOPE_LOG_DIR to the broker's --log directory, or run `memscope analyze LOG` "
            "where the log is"
        )

    @_untraced
    def get_stats(self) -> MemoryStats:
        """Active, peak and total allocations and bytes of this process, up to now.

        Exact: every event so far is flushed and the broker answers with the totals of the
        log up to there, outside this process (:func:`memscope.analyzers.memstats.
        process_stats`). For a full-mode process they are running counters the broker folds
        as it writes each batch (:mod:`memscope.broker.totals`): nothing is re-analysed.
        """
        session = self._session()
        if session.stopped:
            from memscope.api import offline

            answer = offline.call("stats", self._log(), str(session.identity.pid))
            return _results().MemoryStats.from_dict(answer)
        # Two cycles: rows shipped by the first are freed (by the publisher thread) after it;
        # the second one carries those frees.
        seq = session.flush(FLUSH_TIMEOUT_S, rounds=2)
        with _client(session) as client:
            answer = client.stats(
                session.identity.pid,
                session.identity.producer_id,
                seq,
                timeout_s=FLUSH_TIMEOUT_S,
            )
        return _results().MemoryStats.from_dict(answer)

    @_untraced
    def get_memory_by_type(self) -> list[TypeUsage]:
        """Tracked variables alive now, grouped by type, largest first."""
        from memscope.api import offline

        log = self._log()
        rows = offline.call("by-type", log, str(self._session().identity.pid))
        usage = _results().TypeUsage
        return [usage(str(t), int(s), int(c)) for t, s, c in rows]

    @_untraced
    def get_active_allocations(self) -> list[AllocationInfo]:
        """This process's blocks allocated and not yet freed, oldest first (from the log).

        Every live block counts, the interpreter's own included: a list of tens of
        thousands is usual.
        """
        from memscope.api import offline

        rows = offline.call("active", self._log(), str(self._session().identity.pid))
        info = _results().AllocationInfo
        return [info.from_dict(row) for row in rows]

    @_untraced
    def get_allocation_history(self) -> list[AllocationInfo]:
        """Every block this process allocated since tracing started, oldest first.

        Freed ones carry when (``free_ts_ns``). The list is as long as the log's
        allocations: for a long run, prefer ``memscope query LOG``.
        """
        from memscope.api import offline

        rows = offline.call("history", self._log(), str(self._session().identity.pid))
        info = _results().AllocationInfo
        return [info.from_dict(row) for row in rows]

    @_untraced
    def _export(self, kind: str, path: str | PathLike[str]) -> Path:
        from pathlib import Path

        from memscope.api import offline

        log = self._log()
        target = Path(path).resolve()
        offline.call("export", log, kind, str(target))
        return target

    def export_memory_analysis(self, path: str | PathLike[str]) -> Path:
        """Write the memory analysis SVG (treemap, the eight metrics) to ``path``."""
        return self._export("memory_svg", path)

    def export_to_svg(self, path: str | PathLike[str]) -> Path:
        """memscope-rs's name for :meth:`export_memory_analysis`: the memory analysis SVG."""
        return self._export("memory_svg", path)

    def export_lifecycle_timeline(self, path: str | PathLike[str]) -> Path:
        """Write the lifecycle timeline SVG of tracked variables and scopes to ``path``."""
        return self._export("lifecycle_svg", path)

    def export_to_json(self, path: str | PathLike[str]) -> Path:
        """Write the hierarchical snapshot JSON (``memory_hierarchy``) to ``path``."""
        return self._export("snapshot_json", path)

    def export_analysis(self, directory: str | PathLike[str]) -> Path:
        """Write the six analysis JSON files into ``directory``."""
        return self._export("analysis", directory)

    def export_to_html(self, path: str | PathLike[str]) -> Path:
        """Write the self-contained HTML dashboard to ``path``."""
        return self._export("html", path)


_tracker = Tracker()


def get_global_tracker() -> Tracker:
    """The tracker of this process (one per process)."""
    return _tracker


def _client(session: Session) -> Any:
    from memscope.protocol.control_client import BrokerClient

    return BrokerClient(session.link.control_address, session.settings, timeout_s=FLUSH_TIMEOUT_S)


def _results() -> Any:
    from memscope.api import results

    return results


def __getattr__(name: str) -> Any:
    if name in ("AllocationInfo", "MemoryStats", "TypeUsage"):
        return getattr(_results(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
