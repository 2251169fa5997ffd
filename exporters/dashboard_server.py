"""``memscope dashboard DIR --serve``: the dashboard page, a REST API per file, live updates.

Routes (GET and HEAD only):

- ``/`` — the dashboard page (the same page as ``dashboard.html``, following live updates);
- ``/api`` — an index of the analysis files found in DIR (name, size, mtime, problem);
- ``/api/<kind>`` — one analysis file (``memory_analysis``, ``lifetime``, ...), as stored;
- ``/api/dashboard`` — the dashboard model the page draws;
- ``/api/events`` — server-sent events: ``update`` whenever the files change;
- ``/files/<name>`` — a report file directly inside DIR (``.svg``, ``.json``, ``.html``,
  ``.png``): never a file in a subdirectory (the raw log in ``events/``, the broker's journal
  and ``broker.log`` are not served), never outside DIR: ``..``, absolute paths, encoded
  traversal and NUL bytes are refused.

No route follows a symbolic link: links are ignored when the analysis files are looked for,
and refused (403) when named.

Hardening (see :mod:`memscope.exporters.serve_pool` and :mod:`memscope.exporters.serve_access`):
request heads are read for every connection on one thread and a bounded pool of workers
serves complete requests, each with socket timeouts, so clients that connect and never
finish a request cost a file descriptor each, not a thread; a listen backlog of 128; one
request per connection; at most :data:`MAX_STREAMS` event streams at a time. Beyond loopback a
token is required (generated unless given) and the Host header is still checked.

The files are watched by modification time (``memscope analyze --follow`` replaces them); given
a broker's PUB address, each ``log`` message also triggers a check at once.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import threading
import time
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from memscope.exporters.dashboard_html import page, to_json
from memscope.exporters.dashboard_panels import build_model
from memscope.exporters.report_files import KINDS, MAX_REPORT_BYTES, find_reports, load_reports
from memscope.exporters.serve_access import Access, is_loopback, new_token
from memscope.exporters.serve_pool import PooledServer

HEARTBEAT_S = 15.0
#: Event streams served at once (each holds a worker); more get 503 and retry.
MAX_STREAMS = 8
#: What ``/files/`` serves, by suffix; anything else is refused.
_FILE_TYPES = {
    ".svg": "image/svg+xml",
    ".json": "application/json; charset=utf-8",
    ".png": "image/png",
    ".html": "text/plain; charset=utf-8",
}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


#: The page may run its inline scripts (Vega compiles expressions) and talk to this server only.
_PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Anything else (JSON, SVG files from DIR) is inert even when opened directly.
_DATA_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


class PathRefused(Exception):
    """A requested path that is not a regular file inside the served directory."""


def safe_path(root: Path, requested: str) -> Path:
    """The report file ``requested`` (URL-encoded) directly inside ``root``; raise else.

    Raises:
        PathRefused: NUL or backslash, an absolute path, ``..``, a subdirectory, a suffix
            that is not a report's, or a symbolic link.
        FileNotFoundError: no such regular file.
    """
    text = unquote(requested)
    if "\x00" in text or "\\" in text:
        raise PathRefused("invalid characters in path")
    rel = PurePosixPath(text)
    if rel.is_absolute() or any(part in ("..", "") for part in rel.parts) or not rel.parts:
        raise PathRefused("path leaves the served directory")
    if len(rel.parts) != 1:
        raise PathRefused("only report files directly inside the served directory are served")
    if rel.suffix.lower() not in _FILE_TYPES:
        raise PathRefused("only report files (.svg, .json, .html, .png) are served")
    candidate = root / rel.name
    try:
        mode = candidate.lstat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(requested) from None
    if stat.S_ISLNK(mode):
        raise PathRefused("symbolic links are not served")
    if not stat.S_ISREG(mode):
        raise FileNotFoundError(requested)
    return candidate


def read_no_follow(
    path: Path, limit: int = MAX_REPORT_BYTES, cache: _FileCache | None = None
) -> bytes:
    """The bytes of ``path``, refusing a symbolic link even if one replaced it just now.

    With ``cache``, a file unchanged since it was last read (same inode, size and mtime)
    gives the same ``bytes`` object: clients of one file share one copy in memory.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the final component is a symbolic link
            raise PathRefused("symbolic links are not served") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PathRefused("not a regular file")
        if st.st_size > limit:
            raise PathRefused(f"{path.name} is over {limit} bytes")
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            return cached
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise PathRefused(f"{path.name} is over {limit} bytes")
    if cache is not None:
        cache.put(key, data)
    return data


class _FileCache:
    """The last few files read, by identity and version (bounded in count and bytes)."""

    def __init__(self, entries: int = 16, max_bytes: int = 256 << 20) -> None:
        self._entries = entries
        self._max_bytes = max_bytes
        self._data: dict[tuple[int, ...], bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[int, ...]) -> bytes | None:
        """The cached bytes of this file version, if any."""
        with self._lock:
            return self._data.get(key)

    def put(self, key: tuple[int, ...], data: bytes) -> None:
        """Keep ``data`` (the oldest entries leave first when over the bounds)."""
        with self._lock:
            self._data[key] = data
            while len(self._data) > self._entries or (
                len(self._data) > 1 and sum(map(len, self._data.values())) > self._max_bytes
            ):
                del self._data[next(iter(self._data))]


class _State:
    """The watched directory: a version number bumped on every change, and a model cache."""

    def __init__(self, directory: Path, poll_interval: float) -> None:
        self.directory = directory
        self.poll_interval = poll_interval
        self.version = 0
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)
        self._signature = self.signature()
        self._model: tuple[int, dict[str, Any]] | None = None
        self._model_lock = threading.Lock()
        #: The page and the model as sent, per version: every client shares one copy.
        self._rendered: dict[str, tuple[int, bytes]] = {}
        self.files = _FileCache()

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for kind, path in sorted(find_reports(self.directory, symlinks=False).items()):
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((f"{kind}:{path.name}", st.st_mtime_ns, st.st_size))
        return tuple(out)

    def model(self) -> dict[str, Any]:
        with self._model_lock:
            version = self.version
            if self._model is None or self._model[0] != version:
                self._model = (version, build_model(load_reports(self.directory, symlinks=False)))
            return self._model[1]

    def rendered(self, what: str) -> bytes:
        """The page (``"page"``) or the model's JSON (``"model"``) of the current version."""
        version = self.version
        cached = self._rendered.get(what)
        if cached is not None and cached[0] == version:
            return cached[1]
        model = self.model()
        text = page(model, live=True, api="api") if what == "page" else to_json(model)
        body = text.encode("utf-8")
        self._rendered[what] = (version, body)
        return body

    def watch(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(self.poll_interval)
            self.wake.clear()
            current = self.signature()
            if current == self._signature:
                continue
            time.sleep(min(0.2, self.poll_interval))  # let a burst of rewrites settle
            self._signature = self.signature()
            with self.changed:
                self.version += 1
                self.changed.notify_all()

    def wait_change(self, seen: int, timeout: float) -> int:
        """The version once it differs from ``seen`` (or at stop, or after ``timeout``)."""
        with self.changed:
            self.changed.wait_for(lambda: self.version != seen or self.stopping.is_set(), timeout)
            return self.version

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        with self.changed:
            self.changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server: DashboardHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Quiet: the served page polls nothing, errors go to the client."""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        csp: str = _DATA_CSP,
        cookie: str | None = None,
    ) -> None:
        self.send_response(status)
        # One request per connection: an idle keep-alive connection would hold a worker.
        self.send_header("Connection", "close")
        self.close_connection = True
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", csp)
        for key, value in _SECURITY_HEADERS.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, to_json(value).encode("utf-8"), "application/json; charset=utf-8")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": message, "status": int(status)})

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        """Like GET without the body."""
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        """Route one request."""
        access = self.server.access
        if not access.host_allowed(self.headers.get("Host", "")):
            self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
            return
        parts = urlsplit(self.path)
        path = parts.path
        given = access.token_given(parts.query, self.headers)
        if not access.authorized(given):
            self._error(
                HTTPStatus.UNAUTHORIZED,
                "a token is required: open the URL with ?token= printed at start",
            )
            return
        state = self.server.state
        if path in ("/", "/index.html", "/dashboard.html"):
            self._send(
                HTTPStatus.OK,
                state.rendered("page"),
                "text/html; charset=utf-8",
                csp=_PAGE_CSP,
                cookie=access.cookie_header() if access.token is not None else None,
            )
        elif path == "/api" or path == "/api/":
            self._json(HTTPStatus.OK, self._index())
        elif path == "/api/dashboard":
            self._send(HTTPStatus.OK, state.rendered("model"), "application/json; charset=utf-8")
        elif path == "/api/events":
            self._events()
        elif path.startswith("/api/"):
            self._report(path.removeprefix("/api/"))
        elif path.startswith("/files/"):
            self._file(path.removeprefix("/files/"))
        else:
            self._error(HTTPStatus.NOT_FOUND, "no such page")

    def _index(self) -> dict[str, Any]:
        found = find_reports(self.server.state.directory, symlinks=False)
        return {
            "version": self.server.state.version,
            "kinds": {
                kind: (
                    {"file": found[kind].name, "url": f"/api/{kind}"}
                    if kind in found
                    else {"file": None, "problem": "not found"}
                )
                for kind in KINDS
            },
        }

    def _report(self, kind: str) -> None:
        if kind not in KINDS:
            self._error(HTTPStatus.NOT_FOUND, "unknown report kind; see /api")
            return
        path = find_reports(self.server.state.directory, symlinks=False).get(kind)
        if path is None:
            self._error(HTTPStatus.NOT_FOUND, f"no *_{kind}.json in the served directory")
            return
        try:
            body = read_no_follow(path, cache=self.server.state.files)
        except PathRefused as exc:
            self._error(HTTPStatus.FORBIDDEN, str(exc))
            return
        except OSError as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"cannot read {path.name}: {exc}")
            return
        self._send(HTTPStatus.OK, body, "application/json; charset=utf-8")

    def _file(self, requested: str) -> None:
        try:
            path = safe_path(self.server.state.directory, requested)
            body = read_no_follow(path, cache=self.server.state.files)
        except PathRefused as exc:
            self._error(HTTPStatus.FORBIDDEN, str(exc))
            return
        except FileNotFoundError:
            self._error(HTTPStatus.NOT_FOUND, "no such file")
            return
        except OSError as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"cannot read the file: {exc.strerror}")
            return
        self._send(HTTPStatus.OK, body, _FILE_TYPES[path.suffix.lower()])

    def _events(self) -> None:
        state = self.server.state
        if not state.streams.acquire(blocking=False):
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "too many event streams; retry later")
            return
        try:
            self._stream(state)
        finally:
            state.streams.release()

    def _stream(self, state: _State) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        stream = getattr(self.connection, "stream", None)
        if stream is not None:
            stream()  # written as it goes by this worker (one of at most MAX_STREAMS)
        seen = state.version
        try:
            self.wfile.write(f"retry: 1000\nevent: hello\ndata: {seen}\n\n".encode())
            self.wfile.flush()
            while not state.stopping.is_set():
                version = state.wait_change(seen, HEARTBEAT_S)
                if state.stopping.is_set():
                    break
                if version != seen:
                    seen = version
                    self.wfile.write(f"event: update\ndata: {version}\n\n".encode())
                else:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except OSError:  # the client went away, or stopped reading (socket timeout)
            return


class DashboardHTTPServer(PooledServer):
    """The HTTP server; ``state`` is the watched directory, ``access`` who may use it."""

    def __init__(
        self,
        address: tuple[str, int],
        state: _State,
        token: str | None = None,
        allow_hosts: Iterable[str] = (),
    ) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.access = Access(address[0], self.server_address[1], token, allow_hosts)

    def host_allowed(self, host: str) -> bool:
        """Whether a ``Host`` header names this server (no DNS rebinding)."""
        return self.access.host_allowed(host)


class DashboardServer:
    """A running dashboard server: ``start()``, ``url``, ``stop()`` (also a context manager)."""

    def __init__(
        self,
        directory: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        poll_interval: float = 0.5,
        feed: str | None = None,
        token: str | None = None,
        allow_hosts: Iterable[str] = (),
    ) -> None:
        """Listen on ``host:port`` (not serving yet).

        ``token``: required of every request; beyond loopback one is generated when none is
        given (read it from :attr:`token` or :attr:`url`). ``allow_hosts``: more names the
        Host header may carry (a reverse proxy's, a DNS alias).
        """
        self.state = _State(Path(directory), poll_interval)
        if token is None and not is_loopback(host):
            token = new_token()
        self.token = token
        self.httpd = DashboardHTTPServer((host, port), self.state, token, allow_hosts)
        self.feed = feed
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """The page's address (with the token; a wildcard bind is named by the host name)."""
        host, port = self.httpd.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if host_text in ("0.0.0.0", "::"):
            host_text = socket.gethostname()
        if ":" in host_text:
            host_text = f"[{host_text}]"
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host_text}:{port}/{query}"

    def start(self) -> DashboardServer:
        """Serve and watch in daemon threads."""
        targets = [self.httpd.serve_forever, self.state.watch]
        if self.feed:
            targets.append(self._follow_feed)
        for target in targets:
            thread = threading.Thread(
                target=target, name=f"memscope-dashboard-{target.__name__}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _follow_feed(self) -> None:
        import zmq

        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(str(self.feed))
        try:
            while not self.state.stopping.is_set():
                if sock.poll(500):
                    sock.recv_multipart()
                    self.state.wake.set()
        finally:
            sock.close(linger=0)

    def stop(self) -> None:
        """Stop serving, close the socket and end the threads."""
        self.state.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
