"""Where requests come from: stdin lines, or frames from ZeroMQ clients.

Each port turns its input into (session, parsed request) pairs for the router
and writes a session's replies back the way they came in.
"""
from __future__ import annotations

import logging
import os

import zmq

from router.lines import LineSplitter, Oversized
from router.parse import Parsed, parse
from router.session import Session

log = logging.getLogger("router")
READ_CHUNK = 1 << 18  # a few thousand requests: big batches, bounded backlog
IDLE_SESSION = 300.0  # seconds before a quiet client's session is forgotten


class StdinPort:
    """The launcher's port: one session, lines on a file descriptor in and out."""

    def __init__(self, in_fd: int, out_fd: int, max_line: int, envelope: bool) -> None:
        self.in_fd, self.out_fd = in_fd, out_fd
        self.max_line = max_line
        self.splitter = LineSplitter(max_line)
        self.session = Session("stdin", self._write, envelope)
        self.eof = False

    def read(self) -> list[tuple[Session, Parsed]]:
        chunk = os.read(self.in_fd, READ_CHUNK)
        if not chunk:
            self.eof = True
        lines = self.splitter.feed(chunk) if chunk else self.splitter.finish()
        return [(self.session, parse(raw, self.max_line)) for raw in lines]

    def _write(self, lines: list[bytes]) -> None:
        data = memoryview(b"".join(lines))
        while data:
            data = data[os.write(self.out_fd, data):]


class ClientPort:
    """Service mode: a ROUTER socket; each frame from a client is one request line, each
    reply goes back as one frame (the same bytes as a stdout line, without the newline)."""

    def __init__(self, ctx: zmq.Context, endpoint: str, max_line: int, envelope: bool,
                 secure=None) -> None:
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.MAXMSGSIZE, max(max_line * 16, 1 << 24))
        if secure is not None:
            secure.server(self.socket, f"client endpoint {endpoint}")
        self.socket.bind(endpoint)
        self.max_line = max_line
        self.envelope = envelope
        self.sessions: dict[bytes, Session] = {}

    def read(self) -> list[tuple[Session, Parsed]]:
        out = []
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            identity, payload = frames[0], frames[-1]
            session = self._session(identity)
            if len(payload) > self.max_line:
                line = Oversized(payload[:65536], payload[-65536:], len(payload))
                out.append((session, parse(line, self.max_line)))
            elif payload.strip():
                out.append((session, parse(payload, self.max_line)))

    def _session(self, identity: bytes) -> Session:
        session = self.sessions.get(identity)
        if session is None:
            def send(lines: list[bytes], identity: bytes = identity) -> None:
                for line in lines:
                    try:
                        self.socket.send_multipart([identity, line[:-1]], zmq.NOBLOCK)
                    except zmq.ZMQError as exc:  # the client went away: its replies go nowhere
                        log.info("reply to a departed client dropped: %s", exc)
                        return
            session = self.sessions[identity] = Session(identity, send, self.envelope)
        return session

    def forget_idle(self, now: float) -> None:
        for identity, session in list(self.sessions.items()):
            if not session.busy() and now - session.last_active > IDLE_SESSION:
                del self.sessions[identity]

    def close(self) -> None:
        self.socket.close()

