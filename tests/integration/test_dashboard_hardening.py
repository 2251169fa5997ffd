"""The served dashboard under hostile clients: half-open connections, tokens, symlinks."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
from _browser import browser, watched  # noqa: F401 - fixtures

from memscope.exporters import KINDS
from memscope.exporters.dashboard_server import DashboardServer
from memscope.exporters.sample_reports import write_sample_reports


def request(port, path, host=None, headers=None, address="127.0.0.1"):
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture
def reports(tmp_path):
    paths = write_sample_reports(tmp_path / "run", n_vars=3)
    return tmp_path / "run", paths


def test_300_half_open_connections_do_not_starve_a_normal_request(reports):
    directory, _ = reports
    threads_before = threading.active_count()
    with DashboardServer(directory, port=0, poll_interval=0.2) as server:
        port = server.httpd.server_address[1]
        hanging = []
        try:
            for i in range(300):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                # half a request line, or a head without its blank line: never finished
                sock.sendall(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\n" if i % 2 else b"GE")
                hanging.append(sock)
            deadline = time.monotonic() + 10
            while server.httpd.waiting() < 300 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.httpd.waiting() == 300
            started = time.monotonic()
            status, _, body = request(port, "/api")
            elapsed = time.monotonic() - started
            assert status == 200 and set(json.loads(body)["kinds"]) == set(KINDS)
            assert elapsed < 1.0, f"a normal request took {elapsed:.2f} s"
            # the waiting clients hold no thread: the pool and the head reader only
            assert threading.active_count() - threads_before <= server.httpd.workers + 4
        finally:
            for sock in hanging:
                sock.close()


def test_clients_that_never_read_their_responses_hold_no_worker(reports):
    directory, _ = reports
    # far more than a socket's buffers take: a worker writing it would wait on the client
    (directory / "big.svg").write_bytes(b"<svg>" + b" " * (24 << 20) + b"</svg>")
    with DashboardServer(directory, port=0) as server:
        port = server.httpd.server_address[1]
        stalled = []
        try:
            for _ in range(2 * server.httpd.workers):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", port))
                sock.sendall(
                    f"GET /files/big.svg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
                )
                stalled.append(sock)
            time.sleep(1.0)  # every response built, none read
            started = time.monotonic()
            status, _, _ = request(port, "/api")
            elapsed = time.monotonic() - started
            assert status == 200 and elapsed < 1.0, f"a normal request took {elapsed:.2f} s"
            # one reader still gets the whole file
            status, _, body = request(port, "/files/big.svg")
            assert status == 200 and len(body) == (24 << 20) + 11
        finally:
            for sock in stalled:
                sock.close()


def test_a_request_head_that_never_completes_is_dropped(reports):
    directory, _ = reports
    server = DashboardServer(directory, port=0, poll_interval=0.2)
    server.httpd.head_timeout = 0.5
    with server:
        port = server.httpd.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")
            started = time.monotonic()
            assert sock.recv(100) == b""  # closed by the server
            assert time.monotonic() - started < 5
        assert server.httpd.waiting() == 0


def test_beyond_max_pending_the_oldest_waiting_connection_goes(reports):
    directory, _ = reports
    server = DashboardServer(directory, port=0)
    server.httpd.max_pending = 20
    with server:
        port = server.httpd.server_address[1]
        hanging = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
        try:
            for sock in hanging:
                sock.sendall(b"GET")
            # the first ones were closed by the server (read: end of stream)
            assert hanging[0].recv(10) == b""
            assert server.httpd.waiting() <= 20
            assert request(port, "/api")[0] == 200
        finally:
            for sock in hanging:
                sock.close()


def test_a_huge_request_head_is_refused(reports):
    directory, _ = reports
    with DashboardServer(directory, port=0) as server:
        port = server.httpd.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nX-Junk: " + b"a" * 100_000)
            assert sock.recv(100).startswith(b"HTTP/1.1 431")


def test_off_loopback_a_token_is_required_and_the_host_still_checked(reports):
    directory, _ = reports
    with DashboardServer(directory, host="0.0.0.0", port=0) as server:
        port = server.httpd.server_address[1]
        token = server.token
        assert token and len(token) >= 32 and f"?token={token}" in server.url
        assert request(port, "/api")[0] == 401
        assert request(port, "/api/memory_analysis")[0] == 401
        assert request(port, "/files/x.svg")[0] == 401
        assert request(port, "/")[0] == 401
        assert request(port, "/api?token=wrong")[0] == 401
        assert request(port, "/api", headers={"Authorization": "token wrong"})[0] == 401
        status, headers, _ = request(port, f"/?token={token}")
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # the page's own requests carry the cookie
        assert request(port, "/api/lifetime", headers={"Cookie": cookie.split(";")[0]})[0] == 200
        assert request(port, "/api", headers={"Authorization": f"token {token}"})[0] == 200
        assert request(port, "/api", headers={"Authorization": f"Bearer {token}"})[0] == 200
        # the token does not lift the Host check (DNS rebinding)
        assert request(port, f"/api?token={token}", host=f"evil.example:{port}")[0] == 403


def test_on_loopback_a_given_token_is_enforced_too(reports):
    directory, _ = reports
    with DashboardServer(directory, port=0, token="s3cret-token") as server:
        port = server.httpd.server_address[1]
        assert server.url.endswith("/?token=s3cret-token")
        assert request(port, "/api")[0] == 401
        assert request(port, "/api?token=s3cret-token")[0] == 200
    with DashboardServer(directory, port=0) as server:
        assert server.token is None and "token" not in server.url
        assert request(server.httpd.server_address[1], "/api")[0] == 200


def test_a_symlink_in_the_directory_is_refused_by_every_route(reports, tmp_path):
    directory, paths = reports
    secret = tmp_path / "secret.json"
    outside = json.loads(paths["memory_analysis"].read_text())
    outside["memory_stats"]["active_memory"] = 987_654_321
    outside["secret"] = "OUTSIDE-SECRET"
    secret.write_text(json.dumps(outside))
    # newer than the real file: a link that was followed would win the choice
    os.symlink(secret, directory / "zz_memory_analysis.json")
    os.symlink(secret, directory / "link.json")
    os.symlink(tmp_path / "secret.json", directory / "link.svg")
    os.symlink(tmp_path, directory / "dir")
    # the only lifetime report is a link: it is not there for the server
    lifetime = paths["lifetime"]
    real_lifetime = tmp_path / "lifetime.json"
    lifetime.rename(real_lifetime)
    os.symlink(real_lifetime, lifetime)
    with DashboardServer(directory, port=0) as server:
        port = server.httpd.server_address[1]
        for path in (
            "/files/link.json",
            "/files/link.svg",
            "/files/zz_memory_analysis.json",
            f"/files/{lifetime.name}",
            "/files/dir/secret.json",
        ):
            status, _, body = request(port, path)
            assert status == 403, path
            assert b"OUTSIDE-SECRET" not in body
        status, _, body = request(port, "/api/memory_analysis")
        assert status == 200 and b"OUTSIDE-SECRET" not in body
        assert json.loads(body) == json.loads(paths["memory_analysis"].read_text())
        assert request(port, "/api/lifetime")[0] == 404
        index = json.loads(request(port, "/api")[2])
        assert index["kinds"]["memory_analysis"]["file"] == paths["memory_analysis"].name
        assert index["kinds"]["lifetime"]["file"] is None
        for path in ("/api/dashboard", "/"):
            status, _, body = request(port, path)
            assert status == 200 and b"OUTSIDE-SECRET" not in body and b"987654321" not in body


def test_the_raw_log_journal_and_broker_log_are_not_served(reports):
    directory, paths = reports
    events = directory / "events"
    (events / "_broker").mkdir(parents=True)
    (events / "manifest.json").write_text('{"format": "memscope-log"}')
    (events / "_broker" / "journal").write_text("journal")
    (events / "_broker" / "broker.log").write_text("log")
    (directory / "broker.log").write_text("broker log")
    with DashboardServer(directory, port=0) as server:
        port = server.httpd.server_address[1]
        for path in (
            "/files/events/manifest.json",
            "/files/events/_broker/journal",
            "/files/events%2Fmanifest.json",
            "/files/broker.log",
            "/api/events/manifest.json",
            "/api/manifest",
        ):
            status, _, body = request(port, path)
            assert status in (403, 404), path
            assert b"memscope-log" not in body and b"journal" not in body
        assert request(port, f"/files/{paths['lifetime'].name}")[0] == 200


def test_the_verb_prints_a_url_with_its_token_off_loopback(tmp_path):
    write_sample_reports(tmp_path, n_vars=3)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memscope",
            "dashboard",
            str(tmp_path),
            "--serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving" in line and "?token=" in line, line
        parts = urlsplit(line.split(" at ")[1].split()[0])
        assert parts.hostname == socket.gethostname().lower()  # not 0.0.0.0
        assert request(parts.port, "/api")[0] == 401
        assert request(parts.port, f"/api?{parts.query}")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert "token is required" in proc.stderr.read()


@pytest.mark.browser
def test_the_page_opened_with_its_token_goes_live(reports, watched):  # noqa: F811
    directory, paths = reports
    with DashboardServer(directory, host="0.0.0.0", port=0, poll_interval=0.1) as server:
        port = server.httpd.server_address[1]
        page = watched.page
        page.goto(f"http://127.0.0.1:{port}/?token={server.token}")
        page.wait_for_selector("body[data-ready='1']")
        # the event stream and the API calls carry the cookie the page got
        page.wait_for_function("document.getElementById('status').textContent === 'live'")
        mem = json.loads(paths["memory_analysis"].read_text())
        mem["memory_stats"]["active_memory"] = 5 * 1024**3
        tmp = paths["memory_analysis"].with_suffix(".tmp")
        tmp.write_text(json.dumps(mem))
        tmp.replace(paths["memory_analysis"])
        page.wait_for_selector("body[data-updates='1']", timeout=15_000)
        assert "5.0 GiB" in page.locator("#panel-overview .card .value").all_inner_texts()
        assert watched.errors == [] and watched.dialogs == []
