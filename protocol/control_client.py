"""A client for the broker's control socket (see :mod:`memscope.broker.control`)."""

from __future__ import annotations

import json
from typing import Any

import zmq

from memscope.protocol import addresses, curve

#: How soon a socket retries a broker that is not there (ms), backing off to the maximum.
RECONNECT_MS = 10
RECONNECT_MAX_MS = 1000


class BrokerError(RuntimeError):
    """The broker answered with an error, or did not answer in time."""


def acked_fields(reply: dict[str, Any]) -> tuple[int, int, str]:
    """An ``acked`` reply as (s such that 0..s landed, highest seq that landed, boot id)."""
    return int(reply["seq"]), int(reply.get("highest", reply["seq"])), str(reply["boot"])


class BrokerClient:
    """Sends one request at a time over REQ; a timed-out socket is replaced (lazy pirate).

    Example::

        client = BrokerClient(broker.control_address)
        client.wait(producer_id, seq=12)
        print(client.ingest())
        client.close()
    """

    def __init__(
        self,
        control_address: str,
        settings: curve.CurveKeys | None = None,
        timeout_s: float = 10.0,
        context: zmq.Context | None = None,
    ) -> None:
        self.address = control_address
        self.settings = settings  # CURVE keys (``Settings``); None: no CURVE
        self.timeout_s = timeout_s
        self._context = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._pending = False  # a request sent by begin() awaits its reply

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self._context.socket(zmq.REQ)
            sock.linger = 0
            # a broker still starting answers within 10 ms of its bind, not at libzmq's
            # default retry of 100 ms (every start of an embedded broker waited for it)
            sock.reconnect_ivl = RECONNECT_MS
            sock.reconnect_ivl_max = RECONNECT_MAX_MS
            # loopback control sockets are plain; others take the settings' CURVE keys
            if not addresses.is_loopback(self.address) and self.settings is not None:
                curve.setup_client(sock, self.settings)
            sock.connect(self.address)
            self._sock = sock
        return self._sock

    def request(self, op: str, timeout_s: float | None = None, /, **fields: Any) -> dict[str, Any]:
        """Send ``{"op": op, **fields}``; return the reply.

        Raises:
            BrokerError: the reply says ``ok: false`` or none came within the timeout.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        if self._pending:
            self._reset()  # the reply to an earlier begin() is not wanted any more
        self.begin(op, **fields)
        reply = self.collect(timeout)
        if reply is None:
            self._reset()
            raise BrokerError(f"no reply from the broker at {self.address} within {timeout} s")
        return reply

    def begin(self, op: str, /, **fields: Any) -> None:
        """Send a request without waiting; :meth:`collect` takes its reply later.

        One request at a time: :meth:`abandon` one whose reply never comes.
        """
        if self._pending:
            raise BrokerError(f"a request to {self.address} still waits for its reply")
        self._socket().send(json.dumps({"op": op, **fields}).encode())
        self._pending = True

    @property
    def pending(self) -> bool:
        """A request sent with :meth:`begin` has no reply yet."""
        return self._pending

    def collect(self, timeout_s: float = 0.0) -> dict[str, Any] | None:
        """The reply to the request :meth:`begin` sent, or None if none came within ``timeout_s``.

        With no timeout it only looks (the socket's event flags, which, unlike a poll, do not
        let go of the GIL: a busy traced program would hold the publisher up for a switch
        interval at each).

        Raises:
            BrokerError: no request is pending, or the reply says ``ok: false``.
        """
        if not self._pending or self._sock is None:
            raise BrokerError("no request waits for a reply")
        sock = self._sock
        if timeout_s <= 0:
            if not int(sock.get(zmq.EVENTS)) & zmq.POLLIN:
                return None
        elif not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        self._pending = False
        reply: dict[str, Any] = json.loads(sock.recv())
        if not reply.get("ok"):
            raise BrokerError(str(reply.get("error", "the broker refused the request")))
        return reply

    def abandon(self) -> None:
        """Give up on the pending request's reply (the socket is replaced: lazy pirate)."""
        self._reset()

    def _reset(self) -> None:
        self._pending = False
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def ping(self, timeout_s: float | None = None) -> dict[str, Any]:
        """The broker's boot id and log."""
        return self.request("ping", timeout_s)

    def wait(self, producer: str, seq: int, timeout_s: float = 30.0) -> None:
        """Return once batch ``seq`` of ``producer`` is in the log."""
        self.request("wait", timeout_s + 1.0, producer=producer, seq=seq, timeout_s=timeout_s)

    def acked(self, producer: str, timeout_s: float | None = None) -> tuple[int, int, str]:
        """(s such that 0..s landed, highest seq that landed, broker boot id)."""
        return acked_fields(self.request("acked", timeout_s, producer=producer))

    def flush(self) -> dict[str, Any]:
        """Make the broker commit and snapshot now; the log summary."""
        return self.request("flush")

    def ingest(self) -> list[dict[str, Any]]:
        """Per-producer counters."""
        producers: list[dict[str, Any]] = self.request("ingest")["producers"]
        return producers

    def stats(self, pid: int, producer: str, seq: int, timeout_s: float = 30.0) -> dict[str, Any]:
        """Per-process stats once batch ``seq`` of ``producer`` landed."""
        reply = self.request(
            "stats", timeout_s + 30.0, pid=pid, producer=producer, seq=seq, timeout_s=timeout_s
        )
        stats: dict[str, Any] = reply["stats"]
        return stats

    def close(self) -> None:
        """Close the socket."""
        self._reset()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
