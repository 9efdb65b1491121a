"""Fixtures of the resource tests: a manager, and a real local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from jupyter_resman.core.resources import ResourceManager


@pytest.fixture
def manager():
    """A manager without a session (publishes nothing); closed after the test."""
    m = ResourceManager()
    yield m
    m.close()


class _Handler(BaseHTTPRequestHandler):
    """Routes: / (200), /missing (404), /down (500), /flaky (503 until the Nth try),
    /echo (the request's path and headers as JSON); POST /flaky-post (always 503)."""

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # http.server's name
        server = self.server
        with server.lock:
            server.hits[self.path] = server.hits.get(self.path, 0) + 1
            hits = server.hits[self.path]
        if self.path == "/" or self.path.endswith("/health"):
            self._send(200, b"ok")
        elif self.path == "/missing":
            self._send(404, b"no such page")
        elif self.path == "/down":
            self._send(500, b"broken")
        elif self.path.startswith("/flaky"):
            if hits <= server.flaky_failures:
                self._send(503, b"busy", [("Retry-After", "0")])
            else:
                self._send(200, f"ok after {hits}".encode())
        else:
            body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
            self._send(200, body, [("Content-Type", "application/json")])

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        with self.server.lock:
            self.server.hits["POST " + self.path] = self.server.hits.get("POST " + self.path, 0) + 1
        self._send(503, b"busy")

    def log_message(self, *args):
        pass  # keep test output clean


@pytest.fixture
def http_server():
    """A stdlib HTTP server on a free local port, served by one thread, stopped after the test."""
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    server.lock = threading.Lock()
    server.hits = {}
    server.flaky_failures = 2
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="test-http-server")
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
