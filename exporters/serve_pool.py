"""A TCP server that holds no thread for a connection until its request head has arrived.

``http.server.ThreadingHTTPServer`` starts a thread per connection, and that thread blocks in
``readline`` until the client sends its request: 300 clients that connect and never finish a
request hold 300 threads forever. :class:`PooledServer` instead reads request heads for every
connection on **one** thread, with non-blocking sockets and a selector; a connection is handed
to a **bounded** pool of workers only once its head (up to the blank line) is complete. A
head that does not complete within :attr:`PooledServer.head_timeout` is dropped, as is the
oldest waiting connection when more than :attr:`PooledServer.max_pending` wait. A worker
never writes to the client either: the response it builds is sent by the same selector
thread (dropped after :attr:`PooledServer.io_timeout` without progress), so a client that
does not read its response holds no worker. Only a streamed response (server-sent events,
:meth:`_PutBack.stream`) is written by its worker, with a socket timeout.

The handler class is a ``socketserver.StreamRequestHandler`` as usual; the bytes read ahead
are given back to it through :class:`_Prefixed`, so it parses the request as if it had read
the socket itself.
"""

from __future__ import annotations

import io
import resource
import selectors
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

#: A request head larger than this is refused (431) without reading further.
MAX_HEAD_BYTES = 64 * 1024


class _Prefixed(io.RawIOBase):
    """A socket's byte stream with bytes already read from it put back in front."""

    def __init__(self, prefix: bytes, sock: socket.socket) -> None:
        self._prefix = memoryview(prefix)
        self._sock = sock

    def readable(self) -> bool:
        """Always: this is a read stream."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Read the put-back bytes first, then from the socket."""
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._sock.recv_into(buffer)


class _Waiting:
    """A connection whose request head is still arriving, or whose response is leaving."""

    __slots__ = ("address", "buffer", "deadline", "out", "sock")

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.deadline = deadline
        #: The response's pieces still to send, in order (None while the head is read).
        self.out: deque[memoryview] | None = None


class PooledServer(socketserver.TCPServer):
    """A TCP server: request heads read on one thread, requests served by a bounded pool.

    Attributes (class-level defaults, override per subclass or instance before serving):
        workers: threads serving complete requests.
        head_timeout: seconds a connection may take to send its request head.
        io_timeout: socket timeout of a worker's reads and writes.
        max_pending: connections whose head is still arriving; beyond, the oldest is closed.
        request_queue_size: the listen backlog.
    """

    workers = 16
    head_timeout = 10.0
    io_timeout = 10.0
    max_pending = 1024
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[socketserver.BaseRequestHandler]
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        # Waiting connections hold a descriptor each: stay well inside the process's limit,
        # so that accept() never fails for lack of one (it would be retried at once, forever).
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            self.max_pending = max(16, min(self.max_pending, soft // 2))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="memscope-http")
        self._heads = selectors.DefaultSelector()
        self._waiting: dict[int, _Waiting] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._heads.register(self._wake_r, selectors.EVENT_READ, None)
        self._closing = threading.Event()
        self._reader = threading.Thread(
            target=self._read_heads, name="memscope-http-heads", daemon=True
        )
        self._reader.start()

    # -- accepting: called on the serve_forever thread --------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the new connection for its head to be read (no thread is taken)."""
        sock: socket.socket = request
        sock.setblocking(False)
        waiting = _Waiting(sock, client_address, time.monotonic() + self.head_timeout)
        with self._lock:
            self._waiting[sock.fileno()] = waiting
            self._heads.register(sock, selectors.EVENT_READ, waiting)
            overflow = len(self._waiting) - self.max_pending
            oldest = (
                sorted(self._waiting.values(), key=lambda w: w.deadline)[:overflow]
                if overflow > 0
                else []
            )
        for entry in oldest:
            self._drop(entry)
        self._wake_w.send(b"\0")

    # -- reading heads: one thread ----------------------------------------------------------
    def _read_heads(self) -> None:
        while not self._closing.is_set():
            for key, _ in self._heads.select(timeout=0.5):
                if key.data is None:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                    continue
                if key.data.out is not None:
                    self._write_some(key.data)
                else:
                    self._read_some(key.data)
            now = time.monotonic()
            with self._lock:
                expired = [w for w in self._waiting.values() if w.deadline <= now]
            for entry in expired:
                self._drop(entry)

    def _read_some(self, entry: _Waiting) -> None:
        try:
            data = entry.sock.recv(16384)
        except BlockingIOError:
            return
        except OSError:
            self._drop(entry)
            return
        if not data:
            self._drop(entry)
            return
        entry.buffer += data
        # A complete head ends with an empty line; tolerate bare LF line ends as http.server does.
        if b"\r\n\r\n" in entry.buffer or b"\n\n" in entry.buffer:
            self._forget(entry)
            entry.sock.setblocking(True)
            entry.sock.settimeout(self.io_timeout)
            self._pool.submit(self._serve, entry.sock, entry.address, bytes(entry.buffer))
        elif len(entry.buffer) > MAX_HEAD_BYTES:
            try:
                entry.sock.send(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
            except OSError:
                pass  # the client is gone; it is closed below either way
            self._drop(entry)

    def _write_some(self, entry: _Waiting) -> None:
        assert entry.out is not None
        try:
            sent = entry.sock.send(entry.out[0][:262144])
        except BlockingIOError:
            return
        except OSError:
            self._drop(entry)
            return
        entry.out[0] = entry.out[0][sent:]
        if not entry.out[0]:
            entry.out.popleft()
        entry.deadline = time.monotonic() + self.io_timeout  # a time limit between progress
        if not entry.out:
            self._drop(entry)  # all sent: close (the kernel delivers what it holds)

    def _send_later(self, sock: socket.socket, address: Any, pieces: list[bytes]) -> None:
        """Send a response from the selector thread, so no worker waits on a slow reader.

        The pieces are referenced, not copied: a body the handler shares between clients
        (a cached page or file) costs its memory once, however many clients wait for it.
        """
        sock.setblocking(False)
        entry = _Waiting(sock, address, time.monotonic() + self.io_timeout)
        entry.out = deque(memoryview(p) for p in pieces if p)
        with self._lock:
            self._waiting[sock.fileno()] = entry
            self._heads.register(sock, selectors.EVENT_WRITE, entry)
        self._wake_w.send(b"\0")

    def _forget(self, entry: _Waiting) -> None:
        with self._lock:
            if self._waiting.pop(entry.sock.fileno(), None) is not None:
                self._heads.unregister(entry.sock)

    def _drop(self, entry: _Waiting) -> None:
        self._forget(entry)
        self.shutdown_request(entry.sock)

    # -- serving: the pool ------------------------------------------------------------------
    def _serve(self, sock: socket.socket, address: Any, head: bytes) -> None:
        connection = _PutBack(sock, head)
        try:
            self.finish_request(cast(socket.socket, connection), address)
        except Exception:  # noqa: BLE001 -- one request's failure must not end the worker
            self.handle_error(sock, address)
            self.shutdown_request(sock)
            return
        if connection.pending and not connection.streaming and not self._closing.is_set():
            self._send_later(sock, address, connection.pending)
        else:
            self.shutdown_request(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away or timed out is normal; anything else is printed."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def waiting(self) -> int:
        """Connections whose request head is still arriving."""
        with self._lock:
            return len(self._waiting)

    def server_close(self) -> None:
        """Close the listening socket, every waiting connection and the pool."""
        super().server_close()
        self._closing.set()
        self._wake_w.send(b"\0")
        self._reader.join(timeout=5)
        with self._lock:
            entries = list(self._waiting.values())
        for entry in entries:
            self._drop(entry)
        self._heads.close()
        self._wake_r.close()
        self._wake_w.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class _PutBack:
    """A connected socket whose ``makefile('rb')`` starts with the bytes read ahead.

    What the handler writes (``sendall``) is kept and sent by the selector thread once the
    handler returns, unless it calls :meth:`stream` first (a long-lived response, such as
    server-sent events, written as it goes by its worker).
    """

    def __init__(self, sock: socket.socket, head: bytes) -> None:
        self._sock = sock
        self._head = head
        self.pending: list[bytes] = []
        self.streaming = False

    def sendall(self, data: Any) -> None:
        """Keep ``data`` for the selector thread, or send it now when streaming."""
        if self.streaming:
            self._sock.sendall(data)
        else:
            # bytes are immutable: kept by reference (a shared body is not copied)
            self.pending.append(data if isinstance(data, bytes) else bytes(data))

    def stream(self) -> None:
        """Send what was written so far, and write directly from now on."""
        self.streaming = True
        for piece in self.pending:
            self._sock.sendall(piece)
        self.pending.clear()

    def makefile(self, mode: str = "rb", buffering: int = -1) -> io.BufferedReader:
        """The read file, which replays the head (handlers write with ``sendall``)."""
        if mode not in ("rb", "br"):
            raise ValueError(f"only a binary read file is made here, not {mode!r}")
        return io.BufferedReader(_Prefixed(self._head, self._sock))

    def settimeout(self, value: float | None) -> None:
        """Set the socket's timeout."""
        self._sock.settimeout(value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
