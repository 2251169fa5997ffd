"""Replay spool files that a publisher left behind (the broker was gone when its process ended).

A spool file holds records ``<u32 little-endian length><batch>``; each batch is a complete
wire envelope with its producer id and sequence number, so replaying is sending them again:
the broker drops the ones it already has. A file is deleted once the broker confirms every
batch in it::

    python -m memscope.producer.spool --address tcp://127.0.0.1:5555 /tmp/memscope-spool/*.spool
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import zmq

from memscope.config import Settings, load_settings
from memscope.protocol import addresses, curve
from memscope.protocol.control_client import BrokerClient, BrokerError
from memscope.protocol.wire import WireError, decode_envelope

_HEADER = struct.Struct("<I")


def read_spool(path: Path) -> Iterator[bytes]:
    """Every complete batch in a spool file (a torn last record is skipped)."""
    data = path.read_bytes()
    offset = 0
    while offset + _HEADER.size <= len(data):
        (length,) = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if start + length > len(data):
            return
        yield data[start : start + length]
        offset = start + length


def replay_spool(
    path: Path, address: str, settings: Settings | None = None, timeout: float = 30.0
) -> dict[str, int]:
    """Send a spool file's batches to the broker at ``address``; delete it once all landed.

    Returns ``{"batches": sent, "confirmed": landed, "skipped": unreadable}``.

    Raises:
        BrokerError: the broker did not take or confirm the batches within ``timeout``.
    """
    settings = settings or load_settings()
    highest: dict[str, int] = {}
    payloads: list[bytes] = []
    skipped = 0
    for payload in read_spool(path):
        try:
            envelope = decode_envelope(payload)
        except WireError:
            skipped += 1
            continue
        highest[envelope.producer] = max(highest.get(envelope.producer, -1), envelope.seq)
        payloads.append(payload)
    send_payloads(payloads, list(highest.items()), address, settings, timeout)
    path.unlink()
    return {"batches": len(payloads), "confirmed": len(payloads), "skipped": skipped}


def send_payloads(
    payloads: list[bytes],
    wait_for: list[tuple[str, int]],
    address: str,
    settings: Settings,
    timeout: float,
) -> None:
    """Send encoded batches to the broker at ``address``; wait until they are in the log.

    ``wait_for``: the (producer, seq) of each batch to see in the log before returning.

    Raises:
        BrokerError: the broker did not take or confirm the batches within ``timeout``.
    """
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.linger = int(timeout * 1000)
    curve.setup_client(push, settings)
    push.connect(address)
    try:
        for payload in payloads:
            if not push.poll(int(timeout * 1000), zmq.POLLOUT):
                raise BrokerError(f"the broker at {address} took no batch within {timeout} s")
            push.send(payload)
        with BrokerClient(
            addresses.control_address(address), settings, timeout_s=timeout, context=context
        ) as client:
            for producer, seq in wait_for:
                client.wait(producer, seq, timeout_s=timeout)
    finally:
        push.close(linger=0)
        context.term()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m memscope.producer.spool")
    parser.add_argument("--address", required=True, help="the broker's data address")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failed = 0
    for path in args.files:
        try:
            result = replay_spool(path, args.address, timeout=args.timeout)
        except (BrokerError, OSError) as exc:
            print(f"{path}: not replayed: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(
            f"{path}: {result['batches']} batches landed"
            + (f", {result['skipped']} unreadable skipped" if result["skipped"] else "")
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
