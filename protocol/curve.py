"""CURVE authentication: key files, server and client socket setup.

Key files are ZeroMQ certificates as written by :func:`zmq.auth.create_certificates`
(``NAME.key`` holds the public key, ``NAME.key_secret`` both keys). ``memscope keys`` makes them.

The data socket always uses CURVE when the broker has a secret key. The control and feed
sockets use it only when the broker is bound to a non-loopback address (remote producers
need acknowledgements); on loopback and ipc they stay plain so local tools can reach them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import zmq


class CurveKeys(Protocol):
    """Where the CURVE keys are: the four ``curve_*`` fields of ``memscope.config.Settings``.

    (A protocol rather than ``Settings`` itself: this package imports nothing else of
    memscope.)
    """

    @property
    def curve_server_secret_key(self) -> str:
        """The server's secret key file (CURVE on when set)."""

    @property
    def curve_server_public_key(self) -> str:
        """The server's public key file (clients)."""

    @property
    def curve_client_secret_key(self) -> str:
        """The client's secret key file."""

    @property
    def curve_authorized_clients(self) -> str:
        """A directory of the public keys of the clients allowed in."""


if TYPE_CHECKING:  # zmq.auth is imported only when CURVE is used: it pulls in asyncio and ssl,
    # thousands of objects every full collection of a traced program would visit
    from zmq.auth.thread import ThreadAuthenticator


class CurveKeyError(ValueError):
    """A key file that cannot be used; the message names it."""


def load_keys(path: str, need_secret: bool) -> tuple[bytes, bytes | None]:
    """Read (public, secret) from a certificate file."""
    import zmq.auth

    file = Path(path)
    try:
        public, secret = zmq.auth.load_certificate(file)
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"{file}: cannot read CURVE key file ({exc})") from None
    if need_secret and not secret:
        raise CurveKeyError(f"{file}: holds no secret key (use the NAME.key_secret file)")
    return public, secret


def server_enabled(settings: CurveKeys) -> bool:
    """True when the broker is configured with a server secret key."""
    return bool(settings.curve_server_secret_key)


def setup_server(
    context: zmq.Context,
    sockets: list[zmq.Socket],
    settings: CurveKeys,
) -> ThreadAuthenticator:
    """Make ``sockets`` CURVE servers and start the authenticator; return it (stop it later).

    Clients must know the server's public key; with ``curve_authorized_clients`` set, only
    clients whose public key file is in that directory are accepted.
    """
    import zmq.auth
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = load_keys(settings.curve_server_secret_key, need_secret=True)
    auth = ThreadAuthenticator(context)
    auth.start()
    allowed = settings.curve_authorized_clients
    if allowed:
        if not Path(allowed).is_dir():
            auth.stop()
            raise CurveKeyError(f"{allowed}: curve_authorized_clients is not a directory")
        auth.configure_curve(domain="*", location=allowed)
    else:
        auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
    for sock in sockets:
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True
    return auth


def setup_client(sock: zmq.Socket, settings: CurveKeys) -> None:
    """Make ``sock`` a CURVE client if a server public key is configured."""
    if not settings.curve_server_public_key:
        return
    server_public, _ = load_keys(settings.curve_server_public_key, need_secret=False)
    if settings.curve_client_secret_key:
        public, secret = load_keys(settings.curve_client_secret_key, need_secret=True)
    else:
        public, secret = zmq.curve_keypair()
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret
