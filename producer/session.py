"""One tracing session of one process: capture + rare-table rows + the publisher.

The publisher's thread calls :meth:`Session.drain` every flush interval: it takes the memory
chunks and rare rows of the C capture, polls the live threads, and adds the rows the Python
side queued (``variables``, ``scopes``, ``processes``, ``threads``). The process announces
itself with a ``processes`` ``start`` row when the session starts (and again, as a new
producer with its parent's pid, in a forked child) and an ``exit`` row in its final batch.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from memscope.config import Settings
from memscope.producer import scopes
from memscope.producer.rows import Columnar, RowBuffer, merge
from memscope.producer.signals import blocked, shield_current_thread
from memscope.producer.threadwatch import ThreadWatcher
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


def _missing(what: str, module: str) -> RuntimeError:
    return RuntimeError(
        f"memscope: {what} ({module}) is not part of this build yet; "
        "install a memscope that includes it, or set MEMSCOPE_DISABLE=1 to run untraced"
    )


def _capture_module() -> Any:
    try:
        from memscope.producer import capture
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("memscope"):
            raise _missing("the allocation capture", "memscope.producer.capture") from None
        raise
    return capture


def _publisher_class() -> Any:
    try:
        from memscope.producer.publisher import Publisher
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("memscope"):
            raise _missing("the batch publisher", "memscope.producer.publisher") from None
        raise
    return Publisher


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
        self.threads = ThreadWatcher()
        self.capture = _capture_module()
        self.publisher: Any = None
        self.started_ns = 0
        self.stopped = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start capturing and publishing."""
        publisher_class = _publisher_class()
        self.started_ns = time.monotonic_ns()
        self._announce()
        self.capture.start(mode=self.settings.mode, sample_bytes=self.settings.sample_bytes,
                           native=self.settings.native)
        try:
            self.publisher = publisher_class(
                self.link.address,
                self.identity.producer_id,
                self.identity.pid,
                self.drain,
                self.settings,
            )
        except BaseException:
            self.capture.stop()
            raise
        scopes.sink = self.rows
        with blocked():  # the publisher thread starts with signals blocked (see signals.py)
            self.publisher.start()

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
            argv=[str(a) for a in sys.argv],
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
        self.capture.stop()
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
        seq = int(self.publisher.flush(timeout))
        self.publisher.close(timeout)
        return seq

    def flush(self, timeout: float = 10.0) -> int:
        """Ship everything captured so far; return the last seq sent."""
        return int(self.publisher.flush(timeout))

    def watch_death(self, obj: Any) -> None:
        """Make the death of a tracked list, dict or tuple a real free (see ``_deaths.c``)."""
        from memscope.producer import _deaths

        _deaths.watch(obj)

    def owns_broker(self) -> bool:
        """True in the process that started the embedded broker (not in its forked children)."""
        return self.broker is not None and self.owner_pid == os.getpid()

    # -- the publisher thread's callback -----------------------------------------------------
    def drain(self) -> tuple[list[Any], Columnar]:
        """Memory chunks and rare rows since the last drain (called by the publisher thread)."""
        shield_current_thread()
        chunks, rare = self.capture.drain()
        self.threads.poll(self.rows)
        return list(chunks), merge(dict(rare), self.rows.take())

    # -- fork ----------------------------------------------------------------------------------
    def after_fork_child(self) -> None:
        """In a forked child: reset capture, become a new producer, announce the parent pid."""
        self.capture.after_fork_child()
        self.identity = Identity.current()
        self.rows.clear()
        self.threads.reset()
        self.registry.clear()
        self._announce()
        with blocked():
            self.publisher.reset_after_fork(self.identity.producer_id, self.identity.pid)
