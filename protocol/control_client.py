"""A client for the broker's control socket (see :mod:`memscope.broker.control`)."""

from __future__ import annotations

import json
from typing import Any

import zmq

from memscope.protocol import addresses, curve


class BrokerError(RuntimeError):
    """The broker answered with an error, or did not answer in time."""


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

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self._context.socket(zmq.REQ)
            sock.linger = 0
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
        sock = self._socket()
        sock.send(json.dumps({"op": op, **fields}).encode())
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            self._reset()
            raise BrokerError(f"no reply from the broker at {self.address} within {timeout} s")
        reply: dict[str, Any] = json.loads(sock.recv())
        if not reply.get("ok"):
            raise BrokerError(str(reply.get("error", "the broker refused the request")))
        return reply

    def _reset(self) -> None:
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
        reply = self.request("acked", timeout_s, producer=producer)
        return int(reply["seq"]), int(reply.get("highest", reply["seq"])), str(reply["boot"])

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
