"""A web server with a response cache, exercised by a client over loopback.

    memscope run examples/web_server.py
    python examples/web_server.py [--size 10]

The counterpart of memscope-rs's web server example. A ``ThreadingHTTPServer`` on
127.0.0.1 (a free port) serves ``/items/<n>``; responses are built once and kept in a bounded
LRU cache. Each cached response is tracked when built, so the lifetime report shows when the
cache evicted it (its free), and the per-thread reports show the server's request threads.
"""

from __future__ import annotations

import threading
import urllib.request
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _example import finish, parse_args, print_stats

import memscope

CACHE_ENTRIES = 16


class ResponseCache:
    """A thread-safe LRU cache of response bodies."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.hits = self.misses = 0
        self._lock = threading.Lock()

    def get_or_build(self, key: str) -> bytes:
        """The cached body for ``key``, built (and tracked) on a miss."""
        with self._lock:
            body = self.entries.get(key)
            if body is not None:
                self.hits += 1
                self.entries.move_to_end(key)
                return body
            self.misses += 1
        body = build_response(key)
        memscope.track_var(body, name="response_data")  # dies when evicted below
        with self._lock:
            self.entries[key] = body
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)
        return body


def build_response(key: str) -> bytes:
    """A ~4 KiB JSON-ish body for one item."""
    fields = ", ".join(f'"field_{i}": "{key}-{i}"' for i in range(150))
    return ("{" + fields + "}").encode()


class Handler(BaseHTTPRequestHandler):
    """Serves ``/items/<n>`` from the server's cache."""

    server: AppServer

    def do_GET(self) -> None:  # noqa: N802 -- the name http.server calls
        if not self.path.startswith("/items/"):
            self.send_error(404)
            return
        body = self.server.cache.get_or_build(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: no line per request."""


class AppServer(ThreadingHTTPServer):
    """The HTTP server plus its cache and a log of the connections it saw."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.cache = ResponseCache(CACHE_ENTRIES)
        self.connections: list[str] = []

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        self.connections.append(f"{client_address[0]}:{client_address[1]}")
        super().process_request(request, client_address)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    memscope.init()

    server = AppServer()
    memscope.track_var(server.cache.entries, name="cache")
    memscope.track_var(server.connections, name="connections")
    serving = threading.Thread(target=server.serve_forever, name="http-server")
    serving.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"serving on {base}")

    # The client: 60 requests, mostly for 10 popular items (cache hits) and now and then
    # for one of 40 others (misses that evict the least recently used entry).
    received = 0
    with memscope.scope("client requests"):
        for i in range(60 * args.size):
            item = i % 10 if i % 4 else 10 + (i * 7) % 40
            with urllib.request.urlopen(f"{base}/items/{item}", timeout=10) as reply:
                received += len(reply.read())

    server.shutdown()
    serving.join()
    server.server_close()
    cache = server.cache
    print(
        f"{len(server.connections)} connections, {received:,} bytes received; "
        f"cache: {cache.hits} hits, {cache.misses} misses, {len(cache.entries)} entries"
    )

    print_stats("Web server memory usage")
    finish("webserver", args)


if __name__ == "__main__":
    main()
