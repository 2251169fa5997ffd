"""Broker endpoint addresses: the control and feed sockets sit beside the data socket.

A broker bound to ``tcp://HOST:PORT`` also binds its control socket (REQ/REP) on ``PORT+1``
and its live feed (PUB) on ``PORT+2``; one bound to ``ipc://PATH`` uses ``ipc://PATH.ctl``
and ``ipc://PATH.pub``. Producers find the control socket (for acknowledgements) the same way.
"""

from __future__ import annotations

import ipaddress
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _split_tcp(address: str) -> tuple[str, int]:
    rest = address[len("tcp://") :]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or int(port) == 0:
        raise ValueError(f"{address}: a broker address needs an explicit port (tcp://HOST:PORT)")
    return host, int(port)


def control_address(address: str) -> str:
    """The control socket's address for a broker whose data socket is ``address``."""
    return _beside(address, 1, ".ctl")


def feed_address(address: str) -> str:
    """The live feed's address for a broker whose data socket is ``address``."""
    return _beside(address, 2, ".pub")


def _beside(address: str, port_offset: int, suffix: str) -> str:
    if address.startswith("tcp://"):
        host, port = _split_tcp(address)
        return f"tcp://{host}:{port + port_offset}"
    if address.startswith(("ipc://", "inproc://")):
        return address + suffix
    raise ValueError(f"{address}: not a tcp:// or ipc:// address")


def is_loopback(address: str) -> bool:
    """True for ipc/inproc addresses and tcp addresses on a loopback interface."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        return False
    host, _ = _split_tcp(address)
    host = host.strip("[]")
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name, a wildcard or a host name: not provably loopback


def free_tcp_address(count: int = 3) -> str:
    """A loopback tcp address whose port and the ``count - 1`` following ports are free."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + count > 65535:
            continue
        if all(_port_free(port + i) for i in range(count)):
            return f"tcp://127.0.0.1:{port}"
    raise OSError("no run of free loopback ports found")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
