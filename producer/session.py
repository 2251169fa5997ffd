"""One tracing session of one process: capture + rare-table rows + the publisher.

The publisher's thread calls :meth:`Session.drain` every flush interval: it takes the memory
chunks and rare rows of the C capture, polls the live threads, and adds the rows the Python
side queued (``variables``, ``scopes``, ``processes``, ``threads``). The process announces
itself with a ``processes`` ``start`` row when the session starts (and again, as a new
producer with its parent's pid, in a forked child) and an ``exit`` row in its final batch.
"""

from __future__ import annotations

import importlib
import os
import platform
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from memscope.config import Settings
from memscope.producer import callsite, capture, forking, scopes
from memscope.producer.program_argv import program_argv
from memscope.producer.publisher import Publisher
from memscope.producer.rows import Columnar, RowBuffer, merge
from memscope.producer.signals import blocked, shield_current_thread
from memscope.producer.threadwatch import ThreadWatcher, own_thread
from memscope.producer.tracking import Registry


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is producing: ``producer_id`` is ``host:pid:start_ns`` (unique per process)."""

    producer_id: str
    pid: int
    ppid: int
    host: str

    @classmethod
    def current(cls) -> Identity:
        """The identity of the calling process, now."""
        host = socket.gethostname()
        pid = os.getpid()
        return cls(f"{host}:{pid}:{time.time_ns()}", pid, os.getppid(), host)


@dataclass(frozen=True, slots=True)
class BrokerLink:
    """Where the broker is: its PULL address, control address and (when known) log."""

    address: str
    control_address: str
    log_dir: str


_watching: Session | None = None
#: Callables ``tap(chunks, rare)`` given every drain of a session (in the publisher thread),
#: e.g. the pytest plugin's per-test window (:mod:`memscope.integrations.pytest_tap`). A tap
#: registered before ``memscope.init()`` sees every stack the session interns.
taps: list[Any] = []


def _thread_started(frame: Any, event: str, arg: Any) -> None:
    """``threading``'s profile hook: runs once in each new thread, then removes itself."""
    session = _watching
    if session is None:
        sys.setprofile(None)
        return
    token = session.capture.pause()
    try:
        sys.setprofile(None)
        session.threads.born()
    finally:
        session.capture.resume(token)


def _watch_thread_starts(session: Session | None) -> None:
    """Have new threads announce themselves to ``session`` (None: stop).

    A thread profile hook the program set itself is never replaced.
    """
    global _watching
    current = threading.getprofile()
    if session is not None and current is None:
        _watching = session
        threading.setprofile(_thread_started)
    elif session is None and current is _thread_started:
        threading.setprofile(None)
        _watching = None


class _Arena:
    """The publisher's hold on the tracer's crash-capture arena (``ArenaLink``)."""

    def commit(self, next_seq: int) -> bool:
        """The publisher spooled every batch before ``next_seq``: recycle their buffers."""
        return capture.commit(next_seq)

    def close(self, remove: bool) -> None:
        """The publisher is done: the arena's file goes when the broker has everything."""
        capture.arena_close(remove)


def _arena_dir(setting: str) -> str | None:
    """The directory for this process's arena (made if missing), or None: no crash capture."""
    if not setting:
        return None
    try:
        os.makedirs(setting, mode=0o700, exist_ok=True)
    except OSError:
        return None  # the tracer then keeps its buffers in anonymous memory
    return setting


def _import_before_tracing() -> None:
    """Load what memscope uses while tracing now, so its imports are never traced."""
    import json  # noqa: F401 -- the broker client's requests

    from memscope.producer import _deaths  # noqa: F401 -- track_var
    from memscope.protocol import control_client  # noqa: F401 -- Tracker.get_stats

    for module in _IMPORT_BEFORE_TRACING:
        importlib.import_module(module)


#: Modules of the layers above (the Tracker's) that a session loads before tracing starts;
#: :mod:`memscope.api.tracker` adds its own here, so this layer never names them.
_IMPORT_BEFORE_TRACING: list[str] = []


def import_before_tracing(*modules: str) -> None:
    """Have every session load ``modules`` before tracing starts (their imports stay untraced)."""
    _IMPORT_BEFORE_TRACING.extend(m for m in modules if m not in _IMPORT_BEFORE_TRACING)


class Session:
    """The running tracer of this process (see the module docstring)."""

    def __init__(self, settings: Settings, link: BrokerLink, broker: Any = None) -> None:
        self.settings = settings
        self.link = link
        self.broker = broker  # an EmbeddedBroker this process started, stopped at shutdown
        self.owner_pid = os.getpid()
        self.identity = Identity.current()
        self.rows = RowBuffer()
        self.registry = Registry()
        self.capture = capture
        self.threads = ThreadWatcher(capture.thread_id_of, capture.thread_id)
        self.publisher: Any = None
        self.started_ns = 0
        self.stopped = False
        self.threads_final = False  # set at stop: no thread rows after the exit row

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start capturing and publishing."""
        _import_before_tracing()
        self.started_ns = time.monotonic_ns()
        self._announce()
        token = self.capture.pause()  # this thread's setup is memscope's, not the program's
        try:
            self.capture.start(
                mode=self.settings.mode,
                sample_bytes=self.settings.sample_bytes,
                native=self.settings.native,
                arena_dir=_arena_dir(self.settings.arena_dir),
            )
        except BaseException:
            self.capture.resume(token)
            raise
        try:
            self.publisher = Publisher(
                self.link.address,
                self.identity.producer_id,
                self.identity.pid,
                self.drain,
                self.settings,
                arena=_Arena() if self.capture.arena_path() else None,
            )
            self._identify_arena()
            self.publisher.watch = self._watch
            self.publisher.pending = self.capture.pending_bytes
            scopes.pause, scopes.resume = self.capture.pause, self.capture.resume
            scopes.thread_id = self.capture.thread_id
            scopes.sink = self.rows
            _watch_thread_starts(self)
            with blocked():  # the publisher thread starts with signals blocked (signals.py)
                self.publisher.start()
            self.publisher.wake()  # the start row out (spooled) at once, even if killed soon
            self.capture.term_install(self.publisher.wake_fd)
        except BaseException:
            scopes.sink = None
            self.capture.stop()
            raise
        finally:
            self.capture.resume(token)

    def _announce(self) -> None:
        ident = self.identity
        sampled = self.settings.mode == "sampled"
        self.rows.add(
            "processes",
            ts_ns=time.monotonic_ns(),
            event="start",
            ppid=ident.ppid,
            host=ident.host,
            producer=ident.producer_id,
            argv=program_argv(),
            executable=sys.executable,
            python=platform.python_version(),
            mode=self.settings.mode,
            sample_bytes=self.settings.sample_bytes if sampled else None,
            exit_code=None,
        )

    def stop(self, timeout: float = 10.0) -> int:
        """Stop capturing, ship the final batch (with the ``exit`` row); return its seq."""
        if self.stopped:
            return -1
        self.stopped = True
        scopes.sink = None
        _watch_thread_starts(None)
        token = self.capture.pause()  # this thread's shutdown work is memscope's own
        try:
            self.publisher.flush(timeout)  # every thread row is out before the exit row
            self.threads_final = True
            self.capture.stop()
            self._exit_row()
            seq = int(self.publisher.flush(timeout))
            self.publisher.close(timeout)
        finally:
            self.capture.resume(token)
        # A SIGTERM during the final flush (Pool.terminate() while a worker was leaving) only
        # woke the publisher; now that everything is out the process dies of it.
        if self.capture.term_pending():
            self._die_of_sigterm()
        self.capture.term_uninstall()
        return seq

    def _die_of_sigterm(self) -> None:
        self.capture.term_raise()
        time.sleep(5.0)
        forking.real_exit(128 + signal.SIGTERM)  # (only if the signal could not be delivered)

    def _exit_row(self) -> None:
        ident = self.identity
        self.rows.add(
            "processes",
            ts_ns=time.monotonic_ns(),
            event="exit",
            ppid=ident.ppid,
            host=ident.host,
            producer=ident.producer_id,
            argv=None,
            executable=None,
            python=None,
            mode=self.settings.mode,
            sample_bytes=None,
            exit_code=None,
        )

    def _watch(self) -> None:
        """The publisher's ``watch`` (after every cycle, in its thread)."""
        if self.stopped:
            return  # stop() is shipping the final batch in another thread (and ends it)
        if self.capture.term_pending():
            self._end_in_publisher()
            self._die_of_sigterm()  # as it would have without memscope, its events out first
        self._watch_last_thread()

    def _end_in_publisher(self) -> None:
        """From ``watch``: the final batch (with the exit row) out, in the publisher thread."""
        self.capture.term_uninstall()
        self.stopped = True
        scopes.sink = None
        self.threads.poll(self.rows)
        self.threads_final = True
        self.capture.stop()
        self._exit_row()
        self.publisher.finish_in_thread(self.settings.send_timeout_s + 4.0)

    def _watch_last_thread(self) -> None:
        """The publisher's ``watch``: end a forked child whose program threads are all gone.

        In a child forked from a thread other than the main one, that thread is the child's
        main thread; when its function returns it exits like any thread (no interpreter
        shutdown, no ``atexit``), and without memscope the process ends with status 0 once
        its last thread has. Here memscope's threads would keep it alive (and its parent's
        ``waitpid`` waiting) forever: so the final batch goes out and the process exits 0.
        """
        main = threading.main_thread()
        initial = threading._MainThread  # type: ignore[attr-defined]  # noqa: SLF001
        if isinstance(main, initial) or main.is_alive():
            return  # the process ends through interpreter shutdown (atexit: shutdown())
        if any(t.is_alive() for t in threading.enumerate() if not own_thread(t)):
            return
        self._end_in_publisher()
        forking.real_exit(0)

    def flush(self, timeout: float = 10.0, rounds: int = 1) -> int:
        """Ship everything captured so far; return the last seq sent.

        ``rounds``: see :meth:`memscope.producer.publisher.Publisher.flush`.
        """
        return int(self.publisher.flush(timeout, rounds))

    def watch_death(self, obj: Any) -> None:
        """Make the death of a tracked list, dict or tuple a real free (``core/deaths.c``)."""
        from memscope.producer import _deaths

        _deaths.watch(obj)

    def owns_broker(self) -> bool:
        """True in the process that started the embedded broker (not in its forked children)."""
        return self.broker is not None and self.owner_pid == os.getpid()

    # -- crash capture (the publisher's ArenaLink) ----------------------------------------------
    def _identify_arena(self) -> None:
        if self.capture.arena_path():
            self.capture.arena_identify(
                self.identity.producer_id, self.publisher.spool_path, self.link.address
            )

    # -- the publisher thread's callback -----------------------------------------------------
    def drain(self) -> tuple[list[Any], Columnar]:
        """Memory chunks and rare rows since the last drain (called by the publisher thread)."""
        shield_current_thread()
        chunks, rare = self.capture.drain(commit=self.capture.arena_path() is None)
        if not self.threads_final:
            self.threads.poll(self.rows)
        chunks = list(chunks)
        for tap in tuple(taps):
            try:
                tap(chunks, rare)
            except Exception:  # noqa: BLE001 -- a tap must never cost the log its events
                taps.remove(tap)
        return chunks, merge(dict(rare), self.rows.take())

    # -- fork ----------------------------------------------------------------------------------
    def after_fork_child(self) -> None:
        """In a forked child: reset capture, become a new producer, announce the parent pid."""
        from memscope.producer.forking import reset_inherited_locks

        taps.clear()  # the parent's (a pytest window armed at the fork must not fill here)
        self.capture.after_fork_child()
        reset_inherited_locks()
        self.identity = Identity.current()
        self.rows.clear()
        self.threads.reset()
        self.threads.born()  # the thread that forked: the child's only one (maybe short-lived)
        self.registry = Registry()  # not clear(): another thread may have held its lock
        callsite.after_fork_child()
        self._announce()
        token = self.capture.pause()
        try:
            with blocked():
                self.publisher.reset_after_fork(self.identity.producer_id, self.identity.pid)
            self._identify_arena()
            self.capture.term_install(self.publisher.wake_fd)
        finally:
            self.capture.resume(token)
