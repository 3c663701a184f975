"""The monitor's HTTP server (standard library only): the page, its live feed and /metrics.

  GET /             the live page (monitor/static/index.html, with app.js and style.css)
  GET /events       Server-Sent Events: `hello` (everything, on connect), then `stats` each
                    second and `events` as events arrive
  GET /metrics      Prometheus text format (monitor.metrics)
  GET /api/state    the `hello` snapshot as JSON
  GET /api/streams  ?context=&prefix=  the streams held, most recently changed first
  GET /api/stream   ?context=&id=&at=  a stream's history and its state at a time

Each request has a thread of its own (ThreadingHTTPServer), so a page that stalls or
leaves costs its own thread only, and its errors end its own response only.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import queue
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.config import stays_on_host
from monitor import metrics
from monitor.scan import stop_scans
from monitor.sse import CLOSE, message
from monitor.view import NodeView

log = logging.getLogger("monitor")
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
KEEPALIVE = 10.0  # seconds between comments on a quiet feed: a page that left is noticed
# The page's own files only: nothing from elsewhere may run, load or be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
StreamLookup = Callable[[str, str, str], dict]  # (context, stream id, at) -> reply


def load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once: /static/<name> serves only these."""
    files = {}
    for name in sorted(os.listdir(STATIC)):
        kind = TYPES.get(os.path.splitext(name)[1])
        if kind:
            with open(os.path.join(STATIC, name), "rb") as f:
                files[name] = (f.read(), kind)
    return files


class MonitorServer(ThreadingHTTPServer):
    daemon_threads = True  # a page's feed never holds the monitor's exit

    def __init__(self, host: str, port: int, view: NodeView, lookup: StreamLookup) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.view = view
        self.lookup = lookup
        self.registry = metrics.registry(view)
        self.static = load_static()
        self.loopback = stays_on_host(f"tcp://[{host}]:0" if ":" in host else f"tcp://{host}:0")
        super().__init__((host, port), Handler)


class Handler(BaseHTTPRequestHandler):
    server: MonitorServer
    timeout = 30  # seconds a write may block: a page that stopped reading is dropped
    server_version = "cqrs-monitor"

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        url = urlsplit(self.path)
        if not self._host_allowed():
            return self._send(HTTPStatus.MISDIRECTED_REQUEST, b"unknown host\n", "text/plain")
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        route = url.path
        if route == "/":
            return self._static("index.html")
        if route.startswith("/static/"):
            return self._static(route[len("/static/"):])
        if route == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "text/plain")
        if route == "/metrics":
            return self._send(HTTPStatus.OK, generate_latest(self.server.registry),
                              CONTENT_TYPE_LATEST)
        if route == "/events":
            return self._feed()
        if route == "/api/state":
            return self._json(self.server.view.snapshot(time.monotonic()))
        if route == "/api/streams":
            return self._json(self.server.view.recent_streams(params.get("context", ""),
                                                              params.get("prefix", "")))
        if route == "/api/stream":
            return self._stream(params)
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _host_allowed(self) -> bool:
        """On loopback, only requests that name a loopback host: a page elsewhere cannot
        read this one by pointing a name of its own at 127.0.0.1 (DNS rebinding)."""
        if not self.server.loopback:
            return True
        host = (self.headers.get("Host") or "").strip()
        if not host:
            return True  # every browser names the host: a request without one is no page
        name = host[1:host.find("]")] if host.startswith("[") else host.rpartition(":")[0] or host
        if name.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def _static(self, name: str) -> None:
        found = self.server.static.get(name)
        if found is None:
            return self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        self._send(HTTPStatus.OK, *found)

    def _stream(self, params: dict[str, str]) -> None:
        context, stream_id = params.get("context", ""), params.get("id", "")
        if not context or not stream_id:
            return self._json({"error": "context and id are required"}, HTTPStatus.BAD_REQUEST)
        try:
            reply = self.server.lookup(context, stream_id, params.get("at", ""))
        except ValueError as bad:
            return self._json({"error": str(bad)}, HTTPStatus.BAD_REQUEST)
        self._json(reply, HTTPStatus.OK if "error" not in reply else HTTPStatus.BAD_GATEWAY)

    def _feed(self) -> None:
        """The live feed, until the page leaves or the monitor stops."""
        hub = self.server.view.hub
        page = hub.subscribe()  # before the snapshot: nothing falls between the two
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self._security_headers()
            self.end_headers()
            hello = message("hello", self.server.view.snapshot(time.monotonic()))
            self.wfile.write(b"retry: 1000\n\n" + hello.encode())  # reconnect after 1 s
            while True:
                try:
                    text = page.get(timeout=KEEPALIVE)
                except queue.Empty:
                    text = ": still here\n\n"
                if text == CLOSE:
                    return
                self.wfile.write(text.encode())
        except OSError:  # the page left (broken pipe, reset) or stopped reading (timeout)
            return
        finally:
            hub.unsubscribe(page)

    def _json(self, data: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self._security_headers()
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client left before its answer: nothing to tell it

    def _security_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)

    def log_message(self, fmt: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)


class Web:
    """The server on a thread of its own, bound when it can be: a port taken by someone
    else is tried again every RETRY_EVERY seconds, and never stops the monitor."""

    RETRY_EVERY = 5.0

    def __init__(self, host: str, port: int, view: NodeView, lookup: StreamLookup) -> None:
        self.host, self.port, self.view, self.lookup = host, port, view, lookup
        self.server: MonitorServer | None = None
        self.next_try = 0.0
        self._failed_before = False

    def start_if_due(self, now: float) -> None:
        if self.server is not None or now < self.next_try:
            return
        try:
            self.server = MonitorServer(self.host, self.port, self.view, self.lookup)
        except OSError as exc:
            self.next_try = now + self.RETRY_EVERY
            if not self._failed_before:
                log.error("cannot serve HTTP on %s port %d: %s; trying again every %.0f s "
                          "(the node is not affected)", self.host, self.port, exc.strerror or exc,
                          self.RETRY_EVERY)
            self._failed_before = True
            return
        # A short poll interval: stopping waits for the serving thread's next look.
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="http", daemon=True).start()
        log.info("serving the page and /metrics on http://%s:%d/", _url_host(self.host),
                 self.server.server_address[1])

    def stop(self) -> None:
        self.view.hub.close()
        stop_scans()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
