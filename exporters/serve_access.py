"""Who may use the dashboard server: the Host check and the access token.

- **Host check** (against DNS rebinding: a page of another site that resolves its own name to
  this server): a request's ``Host`` header must name this server: the bound address, a
  loopback name, this machine's host name or one of its addresses, or a name given with
  ``--allow-host``.
- **Token**, as Jupyter does: required whenever the server listens beyond loopback (one is
  generated and printed with the URL when none is given), optional on loopback. A client
  proves it with ``?token=`` in the URL (the page then gets an ``HttpOnly``, ``SameSite=Strict``
  cookie, so its own requests need nothing more), with that cookie, or with an
  ``Authorization: token <T>`` (or ``Bearer <T>``) header.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Protocol
from urllib.parse import parse_qs

#: The cookie's name is made per port (``memscope_token_8080``): cookies are per host, not
#: per port, and two dashboards on one host must not overwrite each other's.
COOKIE = "memscope_token"


class Headers(Protocol):
    """Request headers (``http.client.HTTPMessage`` or a dict)."""

    def get(self, name: str, default: None = None) -> str | None:
        """The header's value, or None."""


_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or name) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _machine_names() -> set[str]:
    """This machine's host names and addresses (best effort: resolution may fail)."""
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            names.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
        except OSError:
            continue  # an unresolvable host name: its addresses are not known, the name is
    return {n for n in names if n}


class Access:
    """The Host check and the token of one server."""

    def __init__(
        self, bind_host: str, port: int, token: str | None, allow_hosts: Iterable[str] = ()
    ) -> None:
        self.token = token
        self.cookie = f"{COOKIE}_{port}"
        self.loopback = is_loopback(bind_host)
        names = {bind_host, *_LOOPBACK_NAMES, *allow_hosts}
        if not self.loopback:
            names |= _machine_names()
        self._hosts = {self._host_port(name, port) for name in names}

    @staticmethod
    def _host_port(name: str, port: int) -> str:
        name = name.strip("[]").lower()
        return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"

    def host_allowed(self, host: str) -> bool:
        """Whether a request's ``Host`` header names this server."""
        return host.lower() in self._hosts

    def token_given(self, query: str, headers: Headers) -> str | None:
        """The token a request carries (query, Authorization header or cookie), if any."""
        values = parse_qs(query).get("token")
        if values:
            return values[0]
        auth = headers.get("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("token", "bearer") and value:
            return value.strip()
        try:
            cookie = SimpleCookie(headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = cookie.get(self.cookie)
        return morsel.value if morsel is not None else None

    def authorized(self, given: str | None) -> bool:
        """Whether ``given`` is the server's token (always true when it has none)."""
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def cookie_header(self) -> str:
        """The ``Set-Cookie`` value that lets the page's own requests through."""
        return f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"
