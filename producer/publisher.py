"""The producer's transport: a daemon thread that drains events and ships batches to a broker.

Policies (see also :mod:`memscope.protocol.wire` for the batch format):

* **Slow broker**: the PUSH socket has a high-water mark of ``send_hwm`` batches; when it is
  full the publisher waits up to ``send_timeout_s``. Nothing is ever dropped.
* **Unreachable or restarting broker**: when a send cannot complete within
  ``send_timeout_s`` the publisher spools batches to a local file (``spool_dir``) and probes
  the broker every cycle; once it is back the spooled batches go out first, in order.
* **Exactly once**: every batch stays in the backlog until the broker's control socket says
  the batch is in the log (op ``acked``). If the broker restarted (a new boot id), reports a
  gap for a second, or acknowledges nothing for 15 s while batches are out, the unacknowledged
  batches are sent again; the broker drops the ones it already has, so each lands once.
* **Crash capture**: with an ``arena`` (the tracer's buffers in a file, see
  :mod:`memscope.producer.harvest`), every batch is written to the spool file as it is packed
  (a durable backlog), and only then does the tracer recycle the buffers it was drained from
  (``arena.commit``): whatever kills the process, each record is in the arena or the spool.
* **fork**: the child calls :meth:`Publisher.reset_after_fork`; it gets a new context, socket,
  backlog and sequence, and never touches the parent's.
* **Invisible**: the thread is a bare ``_thread`` thread, not a :class:`threading.Thread`, so
  the program never sees it in ``threading.enumerate()`` or ``threading.active_count()``; it
  never calls ``threading.current_thread()`` (which would register it), and batches are
  copied into ZeroMQ messages (a zero-copy send would start pyzmq's garbage-collector thread,
  a ``threading.Thread`` the program would see).
* **Last thread**: after each cycle the thread calls ``watch`` (when set); a forked child
  whose program threads have all ended (a fork from a thread whose function returned) has
  nothing left to keep it alive but this thread, and ``watch`` ends it there. The session's
  ``watch`` also ships the final batch of a process that got SIGTERM (see ``tr_term.c``).
"""

from __future__ import annotations

import _thread
import contextlib
import importlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import zmq

from memscope.config import Settings
from memscope.producer.backlog import Backlog, spool_path
from memscope.producer.rows import complete_producer_stats
from memscope.protocol import addresses, curve
from memscope.protocol.control_client import (
    RECONNECT_MAX_MS,
    RECONNECT_MS,
    BrokerClient,
    BrokerError,
    acked_fields,
)
from memscope.protocol.wire import MAX_CHUNKS, Frame, encode_batch_frames

log = logging.getLogger("memscope.producer")

DrainFn = Callable[[], tuple[list[dict[str, Any]], dict[str, dict[str, list[Any]]]]]
ACK_INTERVAL_S = 0.25
#: In a busy cycle (see BUSY_CYCLE_BYTES) the broker is asked at most this often: acknowledged
#: batches leave the backlog sooner, which bounds the process's memory.
BUSY_ACK_INTERVAL_S = 0.05
ACK_TIMEOUT_S = 0.5  # how long close() waits for an acknowledgement
ACK_ABANDON_S = 5.0  # an acknowledgement asked for longer ago is asked again
GAP_RESEND_S = 1.0
STALL_RESEND_S = 15.0
_PROBE_MS = 50
_PROBE_SLICE_MS = 5  # how soon a probe notices that drained() waits
#: A cycle that shipped this much makes the next one come after BUSY_INTERVAL_S instead of
#: the flush interval: records then leave the process about as fast as it makes them.
BUSY_CYCLE_BYTES = 1 << 20
BUSY_INTERVAL_S = 0.02
_ABANDONED: list[tuple[Any, Any, Any]] = []  # a forked child's inherited zmq objects
_BARE: set[int] = set()  # idents of running publisher threads


def _ignore_this_thread() -> None:
    """Keep the publisher's own allocations out of the trace, when the tracer exists."""
    try:
        capture = importlib.import_module("memscope.producer.capture")
    except ImportError:
        return
    ignore = getattr(capture, "ignore_current_thread", None)
    if ignore is not None:
        ignore()


def _warn(message: str, *args: Any) -> None:
    """``log.warning`` from the publisher thread, which must stay unknown to ``threading``.

    A log record asks ``threading.current_thread()`` for the thread's name, which registers a
    bare thread as a ``_DummyThread`` in ``threading.enumerate()``; that entry is removed.
    """
    log.warning(message, *args)
    _forget_dummy()


def _forget_dummy() -> None:
    ident = _thread.get_ident()
    if ident not in _BARE:
        return
    # the one registry threading.enumerate() reads
    active = threading._active  # type: ignore[attr-defined]  # noqa: SLF001
    with threading._active_limbo_lock:  # type: ignore[attr-defined]  # noqa: SLF001
        if isinstance(active.get(ident), threading._DummyThread):  # noqa: SLF001
            del active[ident]


class _BareThread:
    """A ``_thread`` thread with ``is_alive``/``join``: invisible to :mod:`threading`."""

    __slots__ = ("_running", "ident")

    def __init__(self, target: Callable[[], None]) -> None:
        self._running = _thread.allocate_lock()
        self._running.acquire()
        self.ident = 0

        def run() -> None:
            _ignore_this_thread()  # first: nothing of this thread is the program's
            _BARE.add(_thread.get_ident())
            try:
                target()
            finally:
                _BARE.discard(_thread.get_ident())
                self._running.release()

        self.ident = _thread.start_new_thread(run, ())

    def is_alive(self) -> bool:
        return self._running.locked()

    def join(self, timeout: float) -> None:
        if self._running.acquire(timeout=max(timeout, 0.0)):
            self._running.release()


class ArenaLink(Protocol):
    """The tracer's crash-capture arena, as the publisher drives it."""

    def commit(self, next_seq: int) -> bool:
        """Every record drained so far is in a spooled batch before ``next_seq``."""

    def close(self, remove: bool) -> None:
        """The publisher is done; ``remove``: the broker has every batch."""


class Publisher:
    """Ships the batches of one producer (one traced process) to a broker."""

    def __init__(
        self,
        address: str,
        producer_id: str,
        pid: int,
        drain: DrainFn,
        settings: Settings,
        arena: ArenaLink | None = None,
    ) -> None:
        self.address = address
        self.settings = settings
        self._drain = drain
        self._arena = arena
        #: Called in the thread after every cycle (see the module docstring, "Last thread").
        self.watch: Callable[[], None] | None = None
        #: Bytes of the tracer's record buffers (None: not known).
        self.pending: Callable[[], int] | None = None
        self._reset_state(producer_id, pid)

    def _reset_state(self, producer_id: str, pid: int) -> None:
        self.producer_id = producer_id
        self.pid = pid
        self._backlog = Backlog(
            spool_path(self.settings.spool_dir, producer_id), durable=self._arena is not None
        )
        self._next_seq = 0
        self._lock = threading.Lock()
        # the thread waits on this pipe: wake() writes to it, and so does the tracer's
        # SIGTERM handler (tr_term.c), which can call nothing else
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._done = threading.Condition(self._lock)
        self._flush_requested = 0
        self._flush_done = 0
        self._drains_started = 0  # drains begun by _cycle (under the lock)
        self._drain_wanted = 0  # the drain drained() waits for (see _send)
        self._drains_done = 0  # the number of the last drain that returned
        self._flush_rounds = 1  # drain-and-send cycles the pending flush asked for
        self._closing = False
        self._close_deadline = 0.0
        self._thread: _BareThread | None = None
        self._context: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._client: BrokerClient | None = None
        self._unreachable = False
        self._interval = self.settings.flush_interval_s
        self._pending_base = 0  # the tracer's buffer bytes right after the last drain
        self._boot: str | None = None
        self._acked = -1
        self._last_ack_query = 0.0
        self._ack_progress = time.monotonic()
        self._counters = {
            "batches": 0,
            "events": 0,
            "rows": 0,
            "bytes": 0,
            "sent": 0,
            "resent": 0,
            "drain_errors": 0,
            "transport_errors": 0,
        }

    # -- public API -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon thread."""
        if self._thread is not None:
            return
        self._thread = _BareThread(self._run)

    def wake(self) -> None:
        """Drain and send now rather than at the next interval."""
        if self._wake_w < 0:
            return  # closed
        try:
            os.write(self._wake_w, b"w")
        except BlockingIOError:  # the pipe is full: the thread has been woken already
            pass

    @property
    def wake_fd(self) -> int:
        """The pipe's write end: a byte written to it wakes the thread."""
        return self._wake_w

    def _wait(self, timeout: float) -> None:
        """Wait until the interval is over, a wake, or a busy cycle's worth of records.

        ``pending`` (the bytes of the tracer's record buffers) is looked at every
        ``BUSY_INTERVAL_S`` and compared with what it was right after the last drain. The
        tracer's hooks cannot wake the thread themselves (no I/O inside a hook); without the
        look, a program that turns busy would fill a whole idle interval's buffers first.
        """
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            step = left if self.pending is None else min(left, BUSY_INTERVAL_S)
            if self._wait_for_wake(max(step, 0.0)) or left <= step:
                return
            if self._pending_growth() >= BUSY_CYCLE_BYTES:
                return

    def _pending_growth(self) -> int:
        """Bytes of record buffers taken since the last drain (0 when not known).

        The tracer counts whole buffers, and each thread holds one from its start, drained
        or not: only what grew since the drain means records are waiting.
        """
        now = self._pending_bytes()
        return 0 if now is None else now - self._pending_base

    def _note_drained(self) -> None:
        """Right after a drain: what the buffers hold now is the baseline of the next wait."""
        self._pending_base = self._pending_bytes() or 0

    def _pending_bytes(self) -> int | None:
        if self.pending is None:
            return None
        try:
            return self.pending()
        except Exception:  # noqa: BLE001 -- a failing look must not end the thread
            return None

    def _wait_for_wake(self, timeout: float) -> bool:
        """Wait on the wake pipe up to ``timeout``; whether a byte came."""
        if self._wake_r < 0:
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([self._wake_r], [], [], timeout)
        if ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
        return bool(ready)

    def flush(self, timeout: float = 10.0, rounds: int = 1) -> int:
        """Drain now and send everything; return the last seq handed over (-1: none yet).

        Batches that could not be sent within ``timeout`` (broker unreachable) stay spooled
        and are replayed later; their seqs are included in the returned value. ``rounds``:
        cycles run back to back (2: the second ships the frees of what the first shipped,
        made as the thread let go of it, without a second wake-up of the thread).
        """
        if self._thread is None or not self._thread.is_alive():
            for _ in range(max(rounds, 1)):
                self._cycle(final=True, deadline=time.monotonic() + timeout)
            return self._next_seq - 1
        with self._lock:
            self._flush_requested += 1
            self._flush_rounds = max(self._flush_rounds, rounds)
            wanted = self._flush_requested
        self.wake()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._flush_done < wanted and time.monotonic() < deadline:
                self._done.wait(min(0.05, max(deadline - time.monotonic(), 0.001)))
        return self._next_seq - 1

    def drained(self, timeout: float = 10.0) -> bool:
        """Wait until a drain begun after this call has returned (nothing from the broker).

        Everything recorded before the call has then been drained. False when the thread
        does not run or ``timeout`` passed first.
        """
        if self._thread is None or not self._thread.is_alive():
            return False
        with self._lock:
            wanted = self._drains_started + 1
            self._drain_wanted = max(self._drain_wanted, wanted)
        self.wake()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._drains_done < wanted:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._done.wait(min(0.05, left))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Ship what is left, wait (up to ``timeout``) until the broker has it, stop."""
        deadline = time.monotonic() + timeout
        self._close_deadline = deadline
        if self._thread is not None and self._thread.is_alive():
            self.flush(timeout)
            self._closing = True
            self.wake()
            self._thread.join(max(deadline - time.monotonic(), 0.1) + 1.0)
        elif not self._closing:
            self._closing = True
            self._cycle(final=True, deadline=deadline)
            self._finish(deadline)

    @property
    def spool_path(self) -> str:
        """The file this producer spools to (and, with crash capture, journals to)."""
        return str(self._backlog.path)

    def stats(self) -> dict[str, Any]:
        """Counters (``events``: memory events, ``rows``: all tables' rows) and send state."""
        return {
            **self._counters,
            "spooled": self._backlog.spooled,
            "unacked": len(self._backlog.entries),
            "last_seq": self._next_seq - 1,
            "acked_seq": self._acked,
            "unreachable": self._unreachable,
        }

    def reset_after_fork(self, producer_id: str, pid: int) -> None:
        """In a forked child: forget the parent's state and sockets; start afresh."""
        running = self._thread is not None
        # The parent's context and sockets belong to the parent: keep them referenced (never
        # garbage-collected, closed or terminated here) and start afresh.
        _ABANDONED.append((self._context, self._sock, self._client))
        for fd in (self._wake_r, self._wake_w):  # this process's copies of the parent's pipe
            if fd >= 0:
                os.close(fd)
        _BARE.clear()  # the parent's publisher thread does not exist here
        self._reset_state(producer_id, pid)
        if running:
            self.start()

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closing:
            shipped = self._counters["bytes"]
            self._wait(self._interval)
            with self._lock:
                wanted = self._flush_requested
                rounds, self._flush_rounds = self._flush_rounds, 1
            deadline = time.monotonic() + self.settings.send_timeout_s
            try:
                final = wanted > self._flush_done
                for _ in range(rounds if final else 1):
                    self._cycle(final=final, deadline=deadline)
            except (zmq.ZMQError, OSError) as exc:  # keep the thread; the backlog keeps batches
                self._counters["transport_errors"] += 1
                if self._counters["transport_errors"] <= 3:
                    _warn("memscope publisher: %s: %s", type(exc).__name__, exc)
            with self._done:
                self._flush_done = max(self._flush_done, wanted)
                self._done.notify_all()
            if self.watch is not None and not self._closing:
                self.watch()
            # a busy program: drain again soon, so that little is ever held (bounded memory)
            busy = self._counters["bytes"] - shipped >= BUSY_CYCLE_BYTES
            self._interval = BUSY_INTERVAL_S if busy else self.settings.flush_interval_s
        self._finish(self._close_deadline)

    def finish_in_thread(self, timeout: float) -> None:
        """From ``watch``, in the publisher thread: ship everything, wait for the broker, close."""
        deadline = time.monotonic() + timeout
        self._closing = True
        self._cycle(final=True, deadline=deadline)
        self._finish(deadline)

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            self._context = zmq.Context()
            sock = self._context.socket(zmq.PUSH)
            sock.sndhwm = max(int(self.settings.send_hwm), 1)
            sock.immediate = True  # queue only to a connected broker; otherwise spool
            # a broker still starting (an embedded or early one) is connected to within
            # 10 ms of its bind, not at libzmq's default retry of 100 ms; a long outage
            # backs off to a retry a second
            sock.reconnect_ivl = RECONNECT_MS
            sock.reconnect_ivl_max = RECONNECT_MAX_MS
            sock.linger = 0
            curve.setup_client(sock, self.settings)
            sock.connect(self.address)
            self._sock = sock
        return self._sock

    def _cycle(self, final: bool, deadline: float) -> None:
        with self._lock:
            self._drains_started += 1
            number = self._drains_started
        try:
            chunks, rare = self._drain()
            self._note_drained()
        except Exception:  # noqa: BLE001 -- a failing drain must not kill the transport
            self._counters["drain_errors"] += 1
            log.exception("memscope publisher: drain() failed")
            _forget_dummy()
            chunks, rare = [], {}
        with self._done:
            self._drains_done = number
            self._done.notify_all()
        self._pack(chunks, rare)
        if self._arena is not None and self._backlog.all_on_disk():
            # every unacknowledged batch is in the spool: the buffers they were drained from
            # may be recycled (while one is only in memory, a crash harvest still needs them)
            self._arena.commit(self._next_seq)
        self._send(deadline, probe_only=self._unreachable and not final)
        # (a flush does not wait for the answer: who needs the batches landed asks the broker,
        # as get_stats does; close() waits for the acknowledgements itself, in _finish)
        self._acknowledge(force=False)

    def _pack(self, chunks: list[dict[str, Any]], rare: dict[str, dict[str, list[Any]]]) -> None:
        rare = {t: cols for t, cols in rare.items() if cols and any(len(v) for v in cols.values())}
        complete_producer_stats(rare, self._counters["batches"] + 1, self._backlog.spooled)
        chunks = [c for c in chunks if int(c.get("n", 0)) > 0]
        limit = max(int(self.settings.batch_max_events), 1)
        groups: list[list[dict[str, Any]]] = [[]]
        count = 0
        for chunk in chunks:
            if groups[-1] and (count + int(chunk["n"]) > limit or len(groups[-1]) >= MAX_CHUNKS):
                groups.append([])
                count = 0
            groups[-1].append(chunk)
            count += int(chunk["n"])
        if not rare and not groups[-1]:
            return
        for index, group in enumerate(groups):
            # split: the chunks' rec1 bytes go out in one data frame (a view: not copied)
            frames = encode_batch_frames(
                self.producer_id, self.pid, self._next_seq, group, rare if index == 0 else {}
            )
            events = rows = sum(int(c["n"]) for c in group)
            if index == 0:
                rows += sum(len(next(iter(c.values()))) for c in rare.values())
            self._backlog.add(self._next_seq, rows, frames, to_disk=self._unreachable)
            self._next_seq += 1
            self._counters["batches"] += 1
            self._counters["events"] += events  # memory events, as the broker's ingest counts
            self._counters["rows"] += rows
            self._counters["bytes"] += sum(len(f) for f in frames)

    def _send(self, deadline: float, probe_only: bool) -> None:
        sock = self._socket()
        for entry in self._backlog.unsent():
            frames = self._backlog.payload(entry)
            while True:
                try:
                    send_frames(sock, frames)
                    break
                except zmq.Again:
                    if probe_only or time.monotonic() >= deadline:
                        if not self._unreachable:
                            _warn(
                                "memscope publisher: broker %s unreachable; spooling to %s",
                                self.address,
                                self._backlog.path,
                            )
                        self._unreachable = True
                        self._backlog.spill_unsent()
                        return
                    if self._drain_wanted > self._drains_started:
                        return  # drained() waits: drain first, send these in the next cycle
                    self._probe(sock)
            entry.sent = True
            self._counters["sent"] += 1
            probe_only = False
            self._unreachable = False

    def _probe(self, sock: zmq.Socket) -> None:
        """Wait up to ``_PROBE_MS`` for ``sock`` to take a message; less when drained() asks."""
        end = time.monotonic() + _PROBE_MS / 1000
        while self._drain_wanted <= self._drains_started:
            left_ms = int((end - time.monotonic()) * 1000)
            if left_ms <= 0 or sock.poll(min(_PROBE_SLICE_MS, left_ms), zmq.POLLOUT):
                return

    def _acknowledge(self, force: bool) -> None:
        """Ask the broker which batches are in the log and let go of those.

        The question is asked in one cycle and its answer taken in a later one (unless
        ``force``): a busy broker answers late, and the thread does not wait for it.
        """
        if not self._backlog.entries or self._unreachable:
            return
        if self._drain_wanted > self._drains_started and not self._closing:
            return  # drained() waits for the next drain: ask the broker in a later cycle
        client = self._ack_client()
        now = time.monotonic()
        if client.pending:
            try:
                reply = client.collect(ACK_TIMEOUT_S if force else 0.0)
            except BrokerError:
                reply = None
            if reply is not None:
                self._take_ack(*acked_fields(reply), now)
            elif force or now - self._last_ack_query >= ACK_ABANDON_S:
                client.abandon()
        if force:
            self._last_ack_query = now
            try:
                self._take_ack(*client.acked(self.producer_id, timeout_s=ACK_TIMEOUT_S), now)
            except BrokerError:
                pass
            return
        interval = BUSY_ACK_INTERVAL_S if self._interval == BUSY_INTERVAL_S else ACK_INTERVAL_S
        if not client.pending and self._backlog.entries and now - self._last_ack_query >= interval:
            self._last_ack_query = now
            try:
                client.begin("acked", producer=self.producer_id)
            except (BrokerError, zmq.ZMQError):
                client.abandon()

    def _ack_client(self) -> BrokerClient:
        if self._client is None:
            self._client = BrokerClient(
                addresses.control_address(self.address),
                self.settings,
                timeout_s=1.0,
                context=self._context,
            )
        return self._client

    def _take_ack(self, acked: int, highest: int, boot: str, now: float) -> None:
        """The broker has batches 0..``acked`` (and ``highest``); it runs as boot ``boot``."""
        if acked > self._acked:
            self._acked = acked
            self._ack_progress = now
        restarted = self._boot is not None and boot != self._boot
        self._boot = boot
        self._backlog.release(acked)
        quiet = now - self._ack_progress
        sent = any(e.sent for e in self._backlog.entries)
        # A gap (a later batch landed, an earlier one did not) means a batch was lost on the
        # way; silence alone may only mean a busy broker, so it waits much longer.
        stalled = sent and ((highest > acked and quiet >= GAP_RESEND_S) or quiet >= STALL_RESEND_S)
        if restarted or stalled:
            self._counters["resent"] += self._backlog.resend_after(acked)
            self._ack_progress = now

    def _finish(self, deadline: float) -> None:
        """Last sends and acknowledgements, then close the sockets and the spool."""
        while self._backlog.entries and time.monotonic() < deadline:
            self._send(
                min(deadline, time.monotonic() + self.settings.send_timeout_s), probe_only=False
            )
            self._acknowledge(force=True)
            if self._backlog.entries:
                time.sleep(0.02)
        if self._backlog.entries:
            self._backlog.spill_unsent(include_sent=True)
            _warn(
                "memscope publisher: %d batches of %s not confirmed by the broker; they are "
                "kept in %s (replay them with `python -m memscope.producer.spool --address "
                "ADDR %s`)",
                len(self._backlog.entries),
                self.producer_id,
                self._backlog.path,
                self._backlog.path,
            )
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._context is not None:
            self._context.term()
            self._context = None
        self._backlog.close()
        if self._arena is not None:
            self._arena.close(remove=not self._backlog.entries)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1


def send_frames(sock: zmq.Socket, frames: list[Frame]) -> None:
    """Queue one batch's frames without blocking; raise :class:`zmq.Again` if it is not.

    libzmq checks the high-water mark on the first frame only. But when the connection goes
    away in the middle of a message, a later frame fails (Again), and libzmq then drops the
    rest of that message without a word, the next attempt's frames included, up to a last
    frame. So a failed later frame is followed by an empty last frame, which ends the
    dropping, and the batch counts as not sent (``pyzmq``'s ``send_multipart`` would leave
    the next attempt to be swallowed).

    Frames are copied into libzmq's messages (``copy=True``): a zero-copy send of a large
    frame would start pyzmq's garbage-collector thread in the traced program.
    """
    last = len(frames) - 1
    sock.send(frames[0], zmq.NOBLOCK | (zmq.SNDMORE if last else 0), copy=True)
    for index in range(1, last + 1):
        more = zmq.SNDMORE if index < last else 0
        try:
            sock.send(frames[index], zmq.NOBLOCK | more, copy=True)
        except zmq.Again:
            if more:
                sock.send(b"", zmq.NOBLOCK)  # ends the message libzmq is dropping
            raise


def default_producer_id(pid: int | None = None) -> str:
    """``host:pid:start_ns`` as in the wire format."""
    import socket

    return f"{socket.gethostname()}:{pid or os.getpid()}:{time.monotonic_ns()}"
