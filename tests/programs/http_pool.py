"""A stdlib-only service and its clients: ThreadPoolExecutor(32) fetching N times from a local
ThreadingHTTPServer. Prints what the program sees (threads alive, bytes fetched).

Usage: http_pool.py [FETCHES]
"""

import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FETCHES = int(sys.argv[1]) if len(sys.argv) > 1 else 2000


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 -- http.server's name
        body = b"x" * (100 + len(self.path))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 -- http.server's signature
        pass


print("threads at start", threading.active_count(), flush=True)
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
serving = threading.Thread(target=server.serve_forever, name="server")
serving.start()
url = f"http://127.0.0.1:{server.server_address[1]}/"


def fetch(i):
    with urllib.request.urlopen(f"{url}{i}", timeout=30) as response:
        return len(response.read())


with ThreadPoolExecutor(32) as pool:
    total = sum(pool.map(fetch, range(FETCHES)))
server.shutdown()
serving.join()
server.server_close()
print("fetched", total)
print("threads now", threading.active_count(), sorted({t.name for t in threading.enumerate()}))
