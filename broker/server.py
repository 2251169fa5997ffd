"""The broker: PULL batches from many producers, validate, de-duplicate, append to the log.

One thread does the work (``Broker.run``): it waits on the data socket (PULL) and the control
socket (ROUTER, spoken to with REQ), decodes every message it can take without blocking,
writes the group as one record batch per table (memory chunks are validated and stored as
they arrived, rec1 as is and others as cols1, see :mod:`memscope.broker.decode`), commits
the group in the journal (:mod:`memscope.eventlog.journal`) and then answers control
requests. A timer (``log_flush_interval_s``) fsyncs, snapshots the producers' state into
the manifest, rotates old segments, publishes ``{"topic": "log", ...}`` on the feed and,
every few seconds, appends ``ingest`` rows (cumulative per-producer counters; also on the
``flush`` op and at close).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import zmq

from memscope.broker.analysis import NO_ANALYSIS, LogAnalysis
from memscope.broker.control import ControlHandler
from memscope.broker.decode import Decoded, MemoryAssembler, chunk_batch, decode
from memscope.broker.ingest import BROKER, MAX_RANGES, UNIDENTIFIED, Ingest
from memscope.config import Settings
from memscope.eventlog import journal as journal_mod
from memscope.eventlog.log import LogError, LogWriter
from memscope.eventlog.retention import Retention
from memscope.protocol import addresses, curve
from memscope.protocol.wire import MAX_CHUNKS, Envelope, WireError, decode_envelope

TYPE_CHECKING = False
if TYPE_CHECKING:  # zmq.auth pulls in asyncio and ssl: imported by curve only when CURVE is on
    from zmq.auth.thread import ThreadAuthenticator

#: Batches of each producer that ZeroMQ queues in the broker before they are read.
RECEIVE_HWM = 4

log = logging.getLogger("memscope.broker")

#: A group is committed when it holds this many events (or the socket has nothing more).
#: Its memory events are written as record batches of about this size (small envelopes are
#: coalesced, big ones pass through): bigger batches measured no faster to compress here and
#: fall out of the CPU cache (bench/bench_broker.py --in-process).
COMMIT_EVENTS = 65536
COMMIT_ENVELOPES = 256
MAX_MESSAGE_BYTES = 1 << 30
TAKE_SECONDS = 0.1
INGEST_INTERVAL_S = 5.0
#: Forgotten producers' rows are written once this many wait (bounded memory in a flood).
INGEST_ROWS_AT = 1024
#: An orphaned embedded broker closes after this long without a batch (see stop_when_orphaned).
ORPHAN_IDLE_S = 5.0


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def return_freed_memory() -> None:
    """Make the large buffers this process frees go back to the system at once.

    A broker allocates and frees batch-sized buffers all the time (ZeroMQ messages, Arrow
    arrays). glibc raises its mmap threshold after each large free, so later ones come from
    the heap and stay in it; pyarrow's default pool (mimalloc), and jemalloc too, keep freed
    pages as well. Under a steady stream that held 20-25 MiB that were never returned. A
    fixed threshold of 128 KiB and the system pool keep the broker at its working set,
    for about 10 % of the ingest rate (``bench/bench_broker.py``: 24-26 against 26-28 M
    events per broker CPU-second). An ``ARROW_DEFAULT_MEMORY_POOL`` the user set is kept.
    """
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())
    if sys.platform.startswith("linux") and not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # (not glibc: nothing to do)
            ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


class BrokerConfigError(Exception):
    """The broker cannot start with this configuration; the message says what to change."""


#: Seconds between two attempts to write again after the log could not be written.
RETRY_WRITE_S = 1.0


@dataclass
class _Group:
    decoded: list[Decoded] = field(default_factory=list)
    events: int = 0
    pending: set[tuple[str, int]] = field(default_factory=set)  # (producer, seq) taken
    per_producer: Counter[str] = field(default_factory=Counter)  # of pending


class _RejectLog:
    """Logs the first rejections one by one, then one summary line every few seconds."""

    def __init__(self, first: int = 20, every_s: float = 5.0) -> None:
        self.first, self.every_s = first, every_s
        self.count = 0
        self._unlogged = 0
        self._last = 0.0

    def note(self, reason: str) -> None:
        self.count += 1
        now = time.monotonic()
        if self.count <= self.first:
            log.warning("rejected message: %s", reason)
            return
        self._unlogged += 1
        if now - self._last >= self.every_s:
            log.warning("rejected %d more messages (latest: %s)", self._unlogged, reason)
            self._unlogged, self._last = 0, now


class Broker:
    """A broker writing the log in ``log_dir`` and bound to ``bind``."""

    def __init__(
        self,
        log_dir: str | Path,
        bind: str,
        settings: Settings | None = None,
        control: str | None = None,
        feed: str | None = None,
        analysis: LogAnalysis = NO_ANALYSIS,
    ) -> None:
        self.settings = settings or Settings()
        #: The analyzers' functions behind ``stats`` and retention (handed in from above).
        self.analysis = analysis
        self.bind = bind
        if not addresses.is_loopback(bind) and not curve.server_enabled(self.settings):
            raise BrokerConfigError(
                f"refusing to bind {bind} (not loopback) without CURVE keys: run "
                "`memscope keys DIR` and set MEMSCOPE_CURVE_SERVER_SECRET_KEY=DIR/broker.key_secret"
            )
        try:
            self.control_address = control or addresses.control_address(bind)
            self.feed_address = feed or addresses.feed_address(bind)
        except ValueError as exc:
            raise BrokerConfigError(str(exc)) from None
        self.boot = uuid.uuid4().hex
        self.ingest = Ingest()
        self.rejects = _RejectLog()
        try:
            self.writer = LogWriter(log_dir, self.settings)
        except LogError as exc:
            raise BrokerConfigError(str(exc)) from None
        except OSError as exc:
            raise BrokerConfigError(f"cannot write the log in {log_dir}: {exc.strerror}") from None
        try:
            self.journal = self._recover()
        except OSError as exc:  # a full disk or a read-only log at start: one line, status 2
            self.writer.abandon_open({})
            raise BrokerConfigError(
                f"cannot write the log in {log_dir}: {exc.strerror or exc}"
            ) from None
        # log_retention_bytes / log_retention_age: folded, then retired (eventlog/retention.py)
        try:
            self.retention = Retention.from_settings(
                self.writer, self.settings, analysis.checkpoint_fold, analysis.dataset_archive
            )
        except ValueError as exc:
            self.writer.abandon_open({})
            raise BrokerConfigError(str(exc)) from None
        self._group = _Group()
        self._assembler = MemoryAssembler(reuse=True, target=COMMIT_EVENTS)
        self._keep_chunks = self.settings.log_memory == "chunks"
        self._stop = False
        self._closed = False
        self._last_flush = time.monotonic()
        self._last_message = self._last_flush
        self._owner_pid: int | None = None
        self._last_ingest = self._last_flush
        #: Why the log cannot be written (None: it can). While set, batches are refused.
        self.write_error: str | None = None
        self._write_failed_at = 0.0
        self._retry_at = 0.0
        self._committed: dict[str, int] = {}  # open segments' committed offsets at the failure
        self._dirty = True  # something to snapshot since the last snapshot
        self._messages = 0  # messages received (keys the cached log summary)
        self._summary: tuple[Any, dict[str, Any]] | None = None
        self.context = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self.pull = self.context.socket(zmq.PULL)
        self.control_socket = self.context.socket(zmq.ROUTER)
        self.pub = self.context.socket(zmq.PUB)
        self.control = ControlHandler(self)
        self._bind_all()

    # -- start-up ---------------------------------------------------------------------------

    def _recover(self) -> journal_mod.Journal:
        state = self.writer.state
        self.ingest.load(state.get("producers", {}))
        info = state.get("journal")
        committed: dict[str, int] | None = None
        number = 0
        if isinstance(info, dict) and "file" in info:
            replayed = journal_mod.replay(
                self.writer.path, str(info["file"]), int(info.get("offset", 0))
            )
            for (producer, pid, seq, n), events in zip(
                replayed.batches, replayed.events, strict=True
            ):
                st = self.ingest.get(producer, pid)
                if st.seqs.add(seq):
                    st.batches += 1
                    st.events += events
                    st.rows += n
            committed = {str(k): int(v) for k, v in state.get("offsets", {}).items()}
            committed.update(replayed.offsets)
            number = journal_mod.journal_number(str(info["file"])) + 1
        for note in self.writer.recover(committed):
            log.warning("%s", note)
        old = sorted((self.writer.path / journal_mod.DIRECTORY).glob("journal-*.msgpack"))
        journal = journal_mod.Journal(self.writer.path, number)
        self.journal = journal
        self._snapshot()
        for path in old:
            if path.name != journal.name:
                path.unlink(missing_ok=True)
        return journal

    def _bind_all(self) -> None:
        sockets = [self.pull, self.control_socket, self.pub]
        for sock in sockets:
            sock.linger = 0
        # per producer: a few batches wait here, the rest in the producers (whose send_hwm
        # makes them wait), so the broker's memory does not grow with their number
        self.pull.rcvhwm = RECEIVE_HWM
        self.pull.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.control_socket.setsockopt(zmq.MAXMSGSIZE, 1 << 20)
        try:
            if curve.server_enabled(self.settings):
                # Control and feed are local (plain) when the data socket is on loopback.
                secured = sockets if not addresses.is_loopback(self.bind) else [self.pull]
                self._auth = curve.setup_server(self.context, secured, self.settings)
            self.pull.bind(self.bind)
            self.control_socket.bind(self.control_address)
            self.pub.bind(self.feed_address)
        except (zmq.ZMQError, curve.CurveKeyError) as exc:
            self._close_sockets()
            self.writer.close()
            raise BrokerConfigError(f"cannot start the broker on {self.bind}: {exc}") from None

    # -- the loop ---------------------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        """Ask :meth:`run` to flush, close and return (safe from a signal handler)."""
        self._stop = True

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the broker cleanly."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def stop_when_orphaned(self, owner_pid: int) -> None:
        """Stop (flushing everything) once ``owner_pid`` is no longer this broker's parent.

        For a broker started by one process (``memscope.init()``, ``memscope run``): if that
        process dies without stopping it, the broker must not run on forever. It waits until no
        batch has arrived for :data:`ORPHAN_IDLE_S`, so forked children of the owner that are
        still sending are not cut off.
        """
        self._owner_pid = owner_pid

    def _orphaned_and_idle(self, now: float) -> bool:
        if self._owner_pid is None or os.getppid() == self._owner_pid:
            return False
        return now - self._last_message >= ORPHAN_IDLE_S

    def run(self) -> None:
        """Serve until :meth:`request_stop`; then flush and close everything."""
        poller = zmq.Poller()
        poller.register(self.pull, zmq.POLLIN)
        poller.register(self.control_socket, zmq.POLLIN)
        poller.register(self.control.results, zmq.POLLIN)
        log.info(
            "broker %s serving %s (control %s, feed %s) into %s",
            self.boot[:8],
            self.bind,
            self.control_address,
            self.feed_address,
            self.writer.path,
        )
        try:
            while not self._stop:
                ready = dict(poller.poll(self._poll_timeout_ms()))
                if self.pull in ready:
                    self._take_messages()
                if self.control_socket in ready:
                    self.control.take_requests()
                if self.control.results in ready:
                    self.control.forward_results()
                self._timers()
        finally:
            self.close()

    def _poll_timeout_ms(self) -> int:
        until_flush = self._last_flush + self.settings.log_flush_interval_s - time.monotonic()
        return max(0, min(int(until_flush * 1000) + 1, 50))  # (a stop waits for it)

    def _take_messages(self) -> None:
        # Bounded in time so that control requests and the flush timer are served under load.
        until = time.monotonic() + TAKE_SECONDS
        for _ in range(COMMIT_ENVELOPES * 4):
            if time.monotonic() >= until:
                break
            try:
                frames = self.pull.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self._last_message = time.monotonic()
            self._messages += 1
            self._on_message(frames)
            if self._group.events >= COMMIT_EVENTS or len(self._group.decoded) >= COMMIT_ENVELOPES:
                self.commit()
        self.commit()

    def _on_message(self, frames: list[Any]) -> None:
        if len(frames) > MAX_CHUNKS + 1:
            self._reject(UNIDENTIFIED, 0, f"{len(frames)} frames (at most {MAX_CHUNKS + 1})")
            return
        try:
            # a split batch: frame 0 is the envelope, the others rec1 data its chunks take
            envelope = decode_envelope(frames[0].buffer, [f.buffer for f in frames[1:]])
        except WireError as exc:
            self._reject(UNIDENTIFIED, 0, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 -- one bad message must not stop the broker
            self._reject(UNIDENTIFIED, 0, f"unreadable envelope: {type(exc).__name__}: {exc}")
            return
        known = self.ingest.producers.get(envelope.producer)
        if self.write_error is not None:
            self._refuse(envelope.producer if known is not None else BROKER)
            return
        if (known is not None and envelope.seq in known.seqs) or (
            (envelope.producer, envelope.seq) in self._group.pending
        ):
            state = self.ingest.get(envelope.producer, envelope.pid)
            state.duplicates += 1  # a replayed batch that landed already: dropped undecoded
            state.changed = True
            return
        # (each batch still pending may open a range too: counted as if it did)
        pending = self._group.per_producer[envelope.producer]
        if (
            known is not None
            and known.seqs.range_count() + pending >= MAX_RANGES
            and known.seqs.splits(envelope.seq)
        ):
            self._reject_envelope(
                envelope, True, f"more than {MAX_RANGES} holes in its batch sequence; batch refused"
            )
            return
        try:
            decoded = decode(envelope, keep_chunks=self._keep_chunks)
        except WireError as exc:
            self._reject_envelope(envelope, known is not None, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 -- one bad message must not stop the broker
            log.exception("unexpected failure decoding %s seq %s", envelope.producer, envelope.seq)
            self._reject_envelope(envelope, known is not None, f"{type(exc).__name__}: {exc}")
            return
        self.ingest.get(envelope.producer, envelope.pid)  # (its seq counts once committed)
        self._group.pending.add((envelope.producer, envelope.seq))
        self._group.per_producer[envelope.producer] += 1
        self._group.decoded.append(decoded)
        self._group.events += envelope.n

    def _reject_envelope(self, envelope: Envelope, known: bool, reason: str) -> None:
        # Unknown producer names are not remembered: hostile ids must not grow the state.
        name = envelope.producer if known else UNIDENTIFIED
        self._reject(
            name, envelope.pid if known else 0, f"{envelope.producer} seq {envelope.seq}: {reason}"
        )

    def _reject(self, producer: str, pid: int, reason: str) -> None:
        self.ingest.reject(producer, pid, reason)
        self.rejects.note(reason)

    def _refuse(self, producer: str) -> None:
        """Count a batch not taken because the log cannot be written (its producer resends)."""
        # (a producer forgotten meanwhile is counted as the broker's)
        state = self.ingest.producers.get(producer) or self.ingest.get(BROKER, 0)
        state.refused += 1
        state.problem = self.write_error
        state.changed = True

    def commit(self) -> None:
        """Write the pending group and journal it; then it counts as landed.

        When the log cannot be written (a full disk), what the group wrote is cut back, its
        batches are refused (not acknowledged: their producers keep and resend them) and
        the broker refuses batches until a write succeeds again (:meth:`_retry_writes`).
        """
        group = self._group
        if not group.decoded:
            return
        self._group = _Group()
        if not self._guarded(lambda: self._write_group(group)):
            for decoded in group.decoded:
                self._refuse(decoded.envelope.producer)
            return
        self.control.totals.written(group.decoded)  # get_stats' running totals
        for decoded in group.decoded:
            env = decoded.envelope
            state = self.ingest.get(env.producer, env.pid)
            if not state.seqs.add(env.seq):
                continue
            state.batches += 1
            state.events += decoded.memory_events
            state.rows += env.n
            state.changed = True
            if decoded.rejected_rows:
                state.rejected_rows += decoded.rejected_rows
                state.problem = decoded.row_problems[-1]
                for problem in decoded.row_problems:
                    self.rejects.note(f"{env.producer} seq {env.seq}: {problem}")
        if self.ingest.trim() and self.ingest.unwritten >= INGEST_ROWS_AT:
            self._guarded(self._write_ingest_rows)  # the forgotten ones' rows, now
        self._dirty = True
        self.control.landed()

    def _guarded(self, write: Any) -> bool:
        """Run ``write`` (writes to the log); whether it succeeded.

        On a failed write it is cut back, and the broker stops taking batches and says so.
        """
        if self.write_error is not None:
            return False
        before = self.writer.open_offsets()
        try:
            write()
            return True
        except OSError as exc:
            self._write_failed(exc, before)
            return False

    def _write_failed(self, exc: OSError, committed: dict[str, int]) -> None:
        try:
            self.writer.abandon_open(committed)
        except OSError as again:  # (a retry closes them: recover() cuts them back again)
            log.error("cutting back the open segments: %s", again.strerror or again)
        self._committed = committed
        reason = exc.strerror or str(exc)
        self.write_error = f"cannot write the log in {self.writer.path}: {reason}"
        self._write_failed_at = time.monotonic()
        self._retry_at = self._write_failed_at + RETRY_WRITE_S
        # once: on stderr (the embedded broker's broker.log), on the control socket, and
        # in an ingest row as soon as one can be written
        log.error(
            "%s; refusing batches (their producers keep them) until it can, retrying every %.0f s",
            self.write_error,
            RETRY_WRITE_S,
        )
        self.control.fail_all(self.write_error)
        self.ingest.get(BROKER, 0).problem = self.write_error

    def _retry_writes(self, now: float, force: bool = False) -> None:
        """Every few seconds while the log cannot be written: try to write again.

        That is: close the cut-back segments and write the manifest; on success the broker
        takes batches again.
        """
        if self.write_error is None or (now < self._retry_at and not force):
            return
        self._retry_at = now + RETRY_WRITE_S
        try:
            for note in self.writer.recover(self._committed):
                log.info("%s", note)
            self._snapshot()
        except OSError:
            return
        refused = sum(p.refused for p in self.ingest.producers.values())
        log.warning(
            "the log is writable again after %.1f s; %d batches were refused so far, "
            "their producers send them again",
            now - self._write_failed_at,
            refused,
        )
        self.write_error = None
        for state in self.ingest.producers.values():
            state.changed = True
        # A new boot id tells every publisher that unacknowledged batches must be resent.
        self.boot = uuid.uuid4().hex
        self.flush()

    def _write_group(self, group: _Group) -> None:
        offsets: dict[str, int] = {}
        parts = [d.memory for d in group.decoded if d.memory is not None]
        for batch in self._assembler.batches(parts):  # each written before the next is built
            relative, offset = self.writer.append("memory", batch)
            offsets[relative] = offset
        kept = [d.chunks for d in group.decoded if d.chunks is not None]
        if kept:  # chunks as they arrived: one memory_chunks row each
            relative, offset = self.writer.append("memory_chunks", chunk_batch(kept))
            offsets[relative] = offset
        per_table: dict[str, list[pa.RecordBatch]] = {}
        for decoded in group.decoded:
            for table, batch in decoded.rare.items():
                per_table.setdefault(table, []).append(batch)
        for table, batches in per_table.items():
            data: pa.RecordBatch | pa.Table = (
                batches[0] if len(batches) == 1 else pa.Table.from_batches(batches)
            )
            relative, offset = self.writer.append(table, data)
            offsets[relative] = offset
        landed = []
        events = []
        for decoded in group.decoded:
            env = decoded.envelope
            landed.append((env.producer, env.pid, env.seq, env.n))
            events.append(decoded.memory_events)
        self.journal.commit(landed, offsets, events)

    # -- periodic work ----------------------------------------------------------------------

    def _timers(self) -> None:
        now = time.monotonic()
        self.control.expire(now)
        self.control.warm(now)
        self._retry_writes(now)
        if self._orphaned_and_idle(now):
            log.warning("the process that started this broker is gone; closing the log")
            self._stop = True
        if now - self._last_flush >= self.settings.log_flush_interval_s:
            self.flush(ingest_rows=False)

    def flush(self, ingest_rows: bool = True) -> None:
        """Commit, write ingest rows, rotate old segments, snapshot, publish on the feed.

        The timer passes ``ingest_rows=False`` except every :data:`INGEST_INTERVAL_S`, so a
        long-running broker adds one ``ingest`` row per active producer every few seconds.
        """
        self.commit()
        now = time.monotonic()
        if ingest_rows or now - self._last_ingest >= INGEST_INTERVAL_S:
            self._guarded(self._write_ingest_rows)
            self._last_ingest = now
        if self._guarded(self.writer.rotate_due) and self._dirty:
            # (nothing new: no rewrite, no fsync -- an idle broker does no work)
            self._guarded(self._snapshot)
        self.retention.tick(now)
        self._last_flush = time.monotonic()
        self._publish()

    def _write_ingest_rows(self, everything: bool = False) -> None:
        rows = self.ingest.rows(only_changed=not everything)
        if rows is not None:
            relative, offset = self.writer.append("ingest", rows)
            self.journal.commit([], {relative: offset})
            self._dirty = True

    def _snapshot(self) -> None:
        self._dirty = False
        state = self.writer.state
        state["producers"] = self.ingest.to_json()
        state["journal"] = {"file": self.journal.name, "offset": self.journal.offset()}
        state["offsets"] = self.writer.open_offsets()
        state["boot"] = self.boot
        self.journal.sync()
        self.writer.flush(sync=True)
        if self.journal.maybe_rotate():
            state["journal"] = {"file": self.journal.name, "offset": 0}
            self.writer.flush(sync=False)

    def _publish(self) -> None:
        self.pub.send_multipart([b"log", self.control.encode(self.log_summary())])

    def log_summary(self) -> dict[str, Any]:
        """What the feed and the ``flush`` op report."""
        # Recomputed only after a change: an idle broker with many producers does no work.
        key = (
            self._dirty,
            self.writer.log_id,
            len(self.writer.manifest["segments"]),
            self.write_error,
            self._counts(),
        )
        if self._summary is None or self._summary[0] != key:
            self._summary = (key, self._compute_summary())
        return {**self._summary[1], "ts_ns": time.monotonic_ns()}

    def _counts(self) -> tuple[int, ...]:
        """Cheap totals that change whenever a message was taken, refused or rejected."""
        return (self.journal.offset(), self.rejects.count, self._messages)

    def _compute_summary(self) -> dict[str, Any]:
        producers = self.ingest.producers.values()
        return {
            "topic": "log",
            "log_id": self.writer.log_id,
            "log": str(self.writer.path),
            "ts_ns": time.monotonic_ns(),
            # rows per table, but "memory" counts every memory event (chunks included)
            "rows": {**self.writer.rows_by_table(), "memory": self.writer.memory_events()},
            "producers": sum(1 for p in producers if p.producer not in (UNIDENTIFIED, BROKER)),
            "events": sum(p.events for p in producers),  # memory events
            "rejected": sum(p.rejected for p in producers),
            "rejected_rows": sum(p.rejected_rows for p in producers),
            "refused": sum(p.refused for p in producers),
            **self.write_state(),
        }

    def write_state(self) -> dict[str, Any]:
        """``log_writable`` and, when it is not, ``log_error`` (for control replies)."""
        if self.write_error is None:
            return {"log_writable": True}
        return {"log_writable": False, "log_error": self.write_error}

    # -- shutdown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is pending, write final ingest rows, close the log and the sockets."""
        if self._closed:
            return
        self._closed = True
        try:
            self._retry_writes(time.monotonic(), force=True)  # a last try after a failed write
            self.commit()
            self._guarded(lambda: self._write_ingest_rows(everything=True))
            self._guarded(self._snapshot)
            self.control.fail_all("the broker is shutting down")
            self.control.close()
            self.retention.join()  # a checkpoint being written is finished, not cut short
            if self._guarded(self.writer.close):
                log.info("broker closed the log %s", self.writer.path)
            else:  # the committed batches stay readable; a restart closes the segments
                log.error("the log %s was left unclosed: %s", self.writer.path, self.write_error)
            self._close_journal()
        finally:
            self._close_sockets()

    def _close_journal(self) -> None:
        try:
            self.journal.close()
        except OSError as exc:  # its entries are on disk; only the last sync failed
            log.error("closing the journal: %s", exc.strerror or exc)

    def _close_sockets(self) -> None:
        for sock in (self.pull, self.control_socket, self.pub, self.control.results):
            sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self.context.term()
