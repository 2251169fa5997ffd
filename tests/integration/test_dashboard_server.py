"""Served mode: the REST API, refusal of paths outside the directory, live updates."""

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


@pytest.fixture
def served(tmp_path):
    paths = write_sample_reports(tmp_path / "run", n_vars=12)
    (tmp_path / "secret.txt").write_text("outside")
    server = DashboardServer(tmp_path / "run", port=0, poll_interval=0.1).start()
    try:
        yield server, paths
    finally:
        server.stop()


def get(server, path, host=None):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        # putrequest keeps the path exactly as given (no client-side normalisation)
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host or parts.netloc)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def test_api_answers_for_every_file(served):
    server, paths = served
    status, ctype, body = get(server, "/api")
    assert status == 200 and ctype.startswith("application/json")
    index = json.loads(body)
    assert set(index["kinds"]) == set(KINDS)
    for kind in KINDS:
        status, _, body = get(server, f"/api/{kind}")
        assert status == 200
        assert json.loads(body) == json.loads(paths[kind].read_text())
    status, _, body = get(server, "/api/dashboard")
    assert status == 200 and [p["id"] for p in json.loads(body)["panels"]][0] == "overview"
    status, ctype, body = get(server, "/")
    assert status == 200 and ctype.startswith("text/html") and b'"live":true' in body


def test_api_errors_are_json(served):
    server, paths = served
    paths["performance"].unlink()
    status, _, body = get(server, "/api/performance")
    assert status == 404 and "no *_performance.json" in json.loads(body)["error"]
    assert get(server, "/api/passwd")[0] == 404
    assert get(server, "/nothing")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/%2E%2E%2Fsecret.txt",
        "/files/..%2fsecret.txt",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/sub/../../secret.txt",
        "/files/..%5csecret.txt",
        "/files/x%00.json",
    ],
)
def test_paths_outside_the_directory_are_refused(served, path):
    server, _ = served
    status, _, body = get(server, path)
    assert status == 403, (path, status)
    assert b"outside" not in body


def test_symlinks_are_refused(served, tmp_path):
    server, _ = served
    os.symlink(tmp_path / "secret.txt", tmp_path / "run" / "link.json")
    status, _, body = get(server, "/files/link.json")
    assert status == 403 and b"outside" not in body


def test_files_inside_are_served_inert(served):
    server, paths = served
    status, _, body = get(server, f"/files/{paths['lifetime'].name}")
    assert status == 200 and json.loads(body) == json.loads(paths["lifetime"].read_text())
    (paths["lifetime"].parent / "evil.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    )
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/files/evil.svg")
    resp = conn.getresponse()
    resp.read()
    assert "sandbox" in resp.getheader("Content-Security-Policy")
    assert "script-src" not in resp.getheader("Content-Security-Policy")
    conn.close()


def test_foreign_host_header_is_refused(served):
    server, _ = served
    assert get(server, "/api", host="evil.example:80")[0] == 403


def read_event(sock_file, name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = sock_file.readline().decode()
        if line.strip() == f"event: {name}":
            return sock_file.readline().decode().removeprefix("data: ").strip()
    raise AssertionError(f"no {name} event")


def test_server_sent_events_follow_file_changes(served):
    server, paths = served
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        f = sock.makefile("rb")
        assert f.readline().startswith(b"HTTP/1.1 200")
        assert read_event(f, "hello") == "0"
        mem = json.loads(paths["memory_analysis"].read_text())
        mem["memory_stats"]["active_memory"] = 123_456_789
        paths["memory_analysis"].write_text(json.dumps(mem))
        assert read_event(f, "update") == "1"
    status, _, body = get(server, "/api/dashboard")
    cards = json.loads(body)["panels"][0]["items"][0]["cards"]
    assert cards[0]["value"] == 123_456_789


def test_a_broker_feed_message_triggers_the_update_at_once(tmp_path):
    import zmq

    paths = write_sample_reports(tmp_path, n_vars=3)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    # mtime polling once an hour: only the feed can explain an update within the test
    server = DashboardServer(
        tmp_path, port=0, poll_interval=3600, feed=f"tcp://127.0.0.1:{port}"
    ).start()
    try:
        parts = urlsplit(server.url)
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
            f = sock.makefile("rb")
            assert read_event(f, "hello") == "0"
            mem = json.loads(paths["memory_analysis"].read_text())
            mem["memory_stats"]["active_memory"] = 42
            paths["memory_analysis"].write_text(json.dumps(mem))
            done = threading.Event()

            def publish():  # a PUB drops messages until the SUB has joined: keep sending
                while not done.wait(0.1):
                    pub.send_multipart([b"log", b'{"topic": "log"}'])

            publisher = threading.Thread(target=publish)
            publisher.start()
            try:
                assert read_event(f, "update", timeout=30) == "1"
            finally:
                done.set()
                publisher.join()
    finally:
        server.stop()
        pub.close()
        ctx.term()


@pytest.mark.browser
def test_live_update_reaches_an_open_page(served, watched):  # noqa: F811
    server, paths = served
    page = watched.page
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("document.getElementById('status').textContent === 'live'")
    mem = json.loads(paths["memory_analysis"].read_text())
    mem["memory_stats"]["active_memory"] = 3 * 1024**3
    tmp = paths["memory_analysis"].with_suffix(".tmp")
    tmp.write_text(json.dumps(mem))
    tmp.replace(paths["memory_analysis"])
    page.wait_for_selector("body[data-updates='1']", timeout=15_000)
    values = page.locator("#panel-overview .card .value").all_inner_texts()
    assert "3.0 GiB" in values
    assert watched.errors == [] and watched.dialogs == []


def test_dashboard_verb_serves_until_terminated(tmp_path):
    write_sample_reports(tmp_path, n_vars=3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "memscope", "dashboard", str(tmp_path), "--serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving" in line and "http://127.0.0.1:" in line, line
        url = line.split(" at ")[1].split()[0]
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", "/api")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
