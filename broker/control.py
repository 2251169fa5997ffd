"""The broker's control socket: JSON requests from REQ clients, answered on a ROUTER.

Requests (one JSON object each) and replies (``{"ok": true, ...}`` or ``{"ok": false,
"error": "..."}``):

* ``{"op": "ping"}`` -> ``{"ok", "boot", "log", "log_id", "log_writable"}``

Every reply to ``ping``, ``flush`` and ``ingest`` carries ``log_writable`` (false while the
log cannot be written, a full disk: the broker then refuses batches and ``log_error`` says
why); ``wait`` and ``stats`` fail at once with that error. ``boot`` changes when the broker
restarts and when it takes batches again after such a failure: a publisher then resends
every batch not acknowledged.

* ``{"op": "wait", "producer": id, "seq": n, "timeout_s": t}`` -> returns once batch ``n`` of
  that producer is in the log (written and journaled), or an error after ``timeout_s``
  (default 30).
* ``{"op": "acked", "producer": id}`` -> ``{"seq": s, "highest": h, "boot": b}``: every batch
  ``0..s`` of that producer is in the log (-1: none), ``h`` is the highest one that landed
  (``h > s``: a gap). Publishers use it to release their replay buffer and to resend.
* ``{"op": "flush"}`` -> commits, writes ``ingest`` rows, snapshots, publishes; the log summary.
* ``{"op": "ingest"}`` -> ``{"producers": [per-producer counters]}``.
* ``{"op": "stats", "pid": p, "producer": id, "seq": n}`` -> waits like ``wait``, then
  ``{"stats": memscope.analyzers.memstats.process_stats(...)}`` of the log as it is.

  A full-mode process's totals come from running counters (:mod:`memscope.broker.totals`):
  the first request folds the log so far into them, and from then on every group of
  batches is folded as it is written (on the stats worker, a few ns per event), so a
  request waits for its batch to land and to be folded, nothing else. Other requests (all
  processes, aggregated or sampled mode) read the log's analysis state on that worker;
  after the first one the worker keeps that state folded as the log grows (every
  :data:`WARM_INTERVAL_S`), so a later request folds only the last moments. A reply from
  the running totals also has ``"events"``: the memory rows of the log they cover (the
  first ones, in log order).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zmq

from memscope.broker.totals import TotalsKeeper

if TYPE_CHECKING:  # pragma: no cover
    from memscope.broker.server import Broker

log = logging.getLogger("memscope.broker")
DEFAULT_WAIT_S = 30.0
#: Seconds between two background folds of the live stats' state (after a first request).
WARM_INTERVAL_S = 0.5


@dataclass
class _Waiter:
    route: list[bytes]
    request: dict[str, Any]
    deadline: float


class ControlHandler:
    """Parses requests, parks waits until their batch lands, and replies."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.waiters: list[_Waiter] = []
        # Stats queries run on a worker thread (DuckDB releases the GIL) so ingest goes on;
        # the worker hands each reply back through this inproc socket.
        self._results_address = f"inproc://memscope-stats-{id(self)}"
        self.results = broker.context.socket(zmq.PULL)
        self.results.linger = 0
        self.results.bind(self._results_address)
        self._executor: ThreadPoolExecutor | None = None
        #: Full-mode totals folded as batches are written (after a first stats request).
        self.totals = TotalsKeeper(broker.writer.path, self._submit, broker.analysis.running_totals)
        self._warming: Future[None] | None = None
        #: Whether a request read the log's analysis state (then it is kept warm).
        self._analysed = False
        self._warmed_at = 0.0

    @staticmethod
    def encode(reply: dict[str, Any]) -> bytes:
        """JSON bytes of a reply or feed message."""
        return json.dumps(reply, default=str).encode()

    def _send(self, route: list[bytes], reply: dict[str, Any]) -> None:
        self.broker.control_socket.send_multipart([*route, self.encode(reply)])

    def take_requests(self) -> None:
        """Answer every request waiting on the socket."""
        sock = self.broker.control_socket
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 3 or frames[-2] != b"":
                continue  # not a REQ envelope: nothing to answer
            route = frames[:-1]
            try:
                request = json.loads(frames[-1])
                if not isinstance(request, dict):
                    raise ValueError("request is not a JSON object")
            except ValueError as exc:
                self._send(route, {"ok": False, "error": f"bad request: {exc}"})
                continue
            self._handle(route, request)

    def _handle(self, route: list[bytes], request: dict[str, Any]) -> None:
        op = request.get("op")
        broker = self.broker
        broker.commit()
        if op == "ping":
            self._send(
                route,
                {
                    "ok": True,
                    "boot": broker.boot,
                    "log": str(broker.writer.path),
                    "log_id": broker.writer.log_id,
                    **broker.write_state(),
                },
            )
        elif op == "acked":
            state = broker.ingest.producers.get(str(request.get("producer", "")))
            seq = state.seqs.contiguous() if state else -1
            highest = state.seqs.highest() if state else -1
            self._send(route, {"ok": True, "seq": seq, "highest": highest, "boot": broker.boot})
        elif op == "flush":
            broker.flush()
            self._send(route, {"ok": True, **broker.log_summary()})
        elif op == "ingest":
            rows = [s.counters() for s in broker.ingest.producers.values()]
            self._send(route, {"ok": True, "producers": rows, **broker.write_state()})
        elif op in ("wait", "stats") and broker.write_error is not None:
            # nothing lands while the log cannot be written: say so now, not at the timeout
            self._send(route, {"ok": False, "error": broker.write_error, **broker.write_state()})
        elif op in ("wait", "stats"):
            self._park(route, request)
        else:
            self._send(route, {"ok": False, "error": f"unknown op {op!r}"})

    def _park(self, route: list[bytes], request: dict[str, Any]) -> None:
        try:
            timeout = float(request.get("timeout_s", DEFAULT_WAIT_S))
            int(request.get("seq", -1))
        except (TypeError, ValueError):
            self._send(route, {"ok": False, "error": "seq and timeout_s must be numbers"})
            return
        self.waiters.append(_Waiter(route, request, time.monotonic() + timeout))
        self.landed()

    def _is_landed(self, request: dict[str, Any]) -> bool:
        seq = int(request.get("seq", -1))
        if seq < 0:
            return True
        state = self.broker.ingest.producers.get(str(request.get("producer", "")))
        return state is not None and seq in state.seqs

    def landed(self) -> None:
        """Answer the parked requests whose batch is now in the log."""
        if not self.waiters:
            return
        still = []
        for waiter in self.waiters:
            if self._is_landed(waiter.request):
                self._finish(waiter)
            else:
                still.append(waiter)
        self.waiters = still

    def _finish(self, waiter: _Waiter) -> None:
        if waiter.request.get("op") != "stats":
            self._send(waiter.route, {"ok": True, "boot": self.broker.boot})
            return
        try:
            self.broker.writer.flush(sync=False)  # row counts in the manifest are current
        except OSError:  # a full disk: the broker says so on its next write; stats still read
            log.warning("the manifest could not be updated before a stats request")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="memscope-stats")
        if waiter.request.get("pid") is not None:
            self.totals.start()  # (once) the running totals, from now on
        self._executor.submit(self._stats_job, waiter.route, waiter.request)

    def _stats_job(self, route: list[bytes], request: dict[str, Any]) -> None:
        try:
            fast = self.totals.stats(request.get("pid"))
            # ("events": the log's memory rows the running totals cover, a prefix in log order)
            reply = (
                {"ok": True, "stats": fast, "events": self.totals.events}
                if fast is not None
                else self._stats(request)
            )
        except Exception as exc:  # noqa: BLE001 -- every request gets its reply
            log.exception("stats request failed")
            reply = {"ok": False, "error": f"stats failed: {type(exc).__name__}: {exc}"}
        push = self.broker.context.socket(zmq.PUSH)
        push.linger = 1000
        try:
            push.connect(self._results_address)
            push.send_multipart([*route, self.encode(reply)])
        finally:
            push.close()

    def _submit(self, fn: Any, *args: Any) -> Future[Any]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="memscope-stats")
        return self._executor.submit(fn, *args)

    def forward_results(self) -> None:
        """Send the replies finished by the stats worker."""
        while True:
            try:
                frames = self.results.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.broker.control_socket.send_multipart(frames)

    def close(self) -> None:
        """Stop the stats worker and close its socket."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self.forward_results()
        self.results.close(linger=0)

    def warm(self, now: float) -> None:
        """Fold what the log gained into the live stats' state, on the stats worker.

        Only once stats were asked for that the running totals did not answer (a broker
        nobody asks pays nothing), at most every :data:`WARM_INTERVAL_S`, and never two at
        once.
        """
        if not self._analysed or self._executor is None or now - self._warmed_at < WARM_INTERVAL_S:
            return
        if self._warming is not None and not self._warming.done():
            return
        self._warmed_at = now
        self._warming = self._executor.submit(self._warm_job)

    def _warm_job(self) -> None:
        live_stats = self.broker.analysis.live_stats
        if live_stats is None:
            return
        try:
            live_stats(self.broker.writer.path).warm()
        except Exception:  # noqa: BLE001 -- a failed warm-up leaves the next request to fold
            log.exception("folding the live stats' state failed")

    def _stats(self, request: dict[str, Any]) -> dict[str, Any]:
        self._analysed = True
        live_stats = self.broker.analysis.live_stats
        if live_stats is None:
            return {
                "ok": False,
                "error": "this broker was started without the analyzers: "
                "no stats (start it with `memscope broker`)",
            }
        pid = request.get("pid")
        try:
            live = live_stats(self.broker.writer.path)  # folded incrementally
            stats = live.stats(None if pid is None else int(pid))
            if pid is not None:  # MemoryStats' peak_allocations and leaks so far
                stats.update(live.seed_figures(int(pid)))
        except Exception as exc:  # noqa: BLE001 -- any analyzer failure becomes an error reply
            log.exception("stats request failed")
            return {"ok": False, "error": f"stats failed: {type(exc).__name__}: {exc}"}
        return {"ok": True, "stats": stats}

    def expire(self, now: float) -> None:
        """Answer parked requests whose deadline passed."""
        if not self.waiters:
            return
        still = []
        for waiter in self.waiters:
            if now >= waiter.deadline:
                req = waiter.request
                self._send(
                    waiter.route,
                    {
                        "ok": False,
                        "error": f"batch {req.get('seq')} of {req.get('producer')!r} did not "
                        "arrive in time",
                    },
                )
            else:
                still.append(waiter)
        self.waiters = still

    def fail_all(self, reason: str) -> None:
        """Answer every parked request with ``reason`` (at shutdown)."""
        for waiter in self.waiters:
            self._send(waiter.route, {"ok": False, "error": reason})
        self.waiters = []
