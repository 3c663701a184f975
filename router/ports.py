"""Where requests come from: stdin lines, or frames from ZeroMQ clients.

Each port turns its input into (session, parsed request) pairs for the router
and writes a session's replies back the way they came in.
"""
from __future__ import annotations

import logging
import os
import select
import stat
from collections import deque

import zmq

from common import wire
from router.lines import LineSplitter, Oversized
from router.parse import Parsed, parse
from router.session import Session

log = logging.getLogger("router")
READ_CHUNK = 1 << 18  # a few thousand requests: big batches, bounded backlog
IDLE_SESSION = 300.0  # seconds before a quiet client's session is forgotten


class StdinPort:
    """The launcher's port: one session, lines on a file descriptor in and out.

    Writing replies never blocks the router: a client may write all its requests before
    it reads a single reply, and a router blocked on a full stdout would stop reading
    stdin, and the two would wait for each other for ever. Replies that the pipe cannot
    take yet wait here (the router stops reading stdin while too many wait) and go out
    whenever the pipe has room.
    """

    def __init__(self, in_fd: int, out_fd: int, max_line: int, envelope: bool) -> None:
        self.in_fd, self.out_fd = in_fd, out_fd
        self.max_line = max_line
        self.splitter = LineSplitter(max_line)
        self.session = Session("stdin", self._write, envelope)
        self.eof = False
        self._out: deque[tuple[bytes, int]] = deque()  # (reply batch, its lines) to write
        self._offset = 0                   # bytes of the first batch already written
        self.unwritten = 0                 # reply lines waiting, for backpressure
        # A pipe (or socket) takes a write of up to PIPE_BUF bytes without blocking once
        # poll says it is writable; a file or a terminal is simply written whole.
        mode = os.fstat(out_fd).st_mode
        self._pipe = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
        self._poll = select.poll()
        self._poll.register(out_fd, select.POLLOUT)

    def read(self) -> list[tuple[Session, Parsed]]:
        chunk = os.read(self.in_fd, READ_CHUNK)
        if not chunk:
            self.eof = True
        lines = self.splitter.feed(chunk) if chunk else self.splitter.finish()
        return [(self.session, parse(raw, self.max_line)) for raw in lines]

    def _write(self, lines: list[bytes]) -> None:
        self._out.append((b"".join(lines), len(lines)))
        self.unwritten += len(lines)
        self.write_out()

    def write_out(self) -> None:
        """Write what the output can take now, without blocking. Raises BrokenPipeError
        when the reader is gone."""
        out = self._out
        while out and (not self._pipe or self._poll.poll(0)):
            batch, lines = out[0]
            data = memoryview(batch)[self._offset:]
            size = len(data) if not self._pipe else min(len(data), select.PIPE_BUF)
            self._offset += os.write(self.out_fd, data[:size])
            if self._offset == len(batch):
                self.unwritten -= lines
                out.popleft()
                self._offset = 0

    @property
    def blocked(self) -> bool:
        """True while replies wait for room in the output."""
        return bool(self._out)


class ClientPort:
    """Service mode: a ROUTER socket; each frame from a client is one request line, each
    reply goes back as one frame (the same bytes as a stdout line, without the newline).

    No reply is ever dropped. ROUTER_MANDATORY makes a full or vanished client visible
    (EAGAIN, EHOSTUNREACH) instead of a silent drop: replies a client's pipe cannot take
    yet wait in its backlog, and while they wait the client's new requests are parked,
    unread, so a client that does not read stops itself and nobody else. Replies to a
    client that is gone are counted as undeliverable.
    """

    SNDHWM = 10_000      # replies queued in ZeroMQ per client before its backlog grows here
    MAX_PARKED = 200_000  # requests parked over all clients before the socket is not read

    def __init__(self, ctx: zmq.Context, endpoint: str, max_line: int, envelope: bool,
                 drops: wire.Drops, secure=None) -> None:
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.SNDHWM, self.SNDHWM)
        # A frame over the line limit is still read, to answer it with error 12; only one
        # far past it (and past anything a client means to send) closes the connection.
        self.socket.setsockopt(zmq.MAXMSGSIZE, max(max_line * 64, 1 << 26))
        if secure is not None:
            secure.server(self.socket, "client")
        self.socket.bind(endpoint)
        self.max_line = max_line
        self.envelope = envelope
        self.sessions: dict[bytes, Session] = {}
        self.backlogs: dict[bytes, deque[bytes]] = {}  # replies ZeroMQ could not take yet
        self.parked: dict[bytes, deque[bytes]] = {}    # requests of clients with a backlog
        self.parked_count = 0
        self.undeliverable = 0
        self.drops = drops

    @property
    def readable(self) -> bool:
        """False while so many requests are parked that reading more would only grow memory."""
        return self.parked_count < self.MAX_PARKED

    def read(self) -> list[tuple[Session, Parsed]]:
        out = self._unpark()
        while self.readable:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frames) != 2:  # a client sends each request as one frame
                self.drops.drop("the client endpoint", frames[0],
                                f"{len(frames) - 1} frames instead of one")
                continue
            identity, payload = frames
            if identity in self.backlogs or identity in self.parked:
                self.parked.setdefault(identity, deque()).append(payload)
                self.parked_count += 1
            else:
                self._take(identity, payload, out)
        return out

    def _take(self, identity: bytes, payload: bytes, out: list) -> None:
        session = self._session(identity)
        if len(payload) > self.max_line:
            line = Oversized(payload[:65536], payload[-65536:], len(payload))
            out.append((session, parse(line, self.max_line)))
        elif payload.strip():
            out.append((session, parse(payload, self.max_line)))

    def _unpark(self) -> list[tuple[Session, Parsed]]:
        """The parked requests of clients whose backlog has drained, in arrival order."""
        out: list = []
        for identity in [i for i in self.parked if i not in self.backlogs]:
            queue = self.parked.pop(identity)
            self.parked_count -= len(queue)
            for payload in queue:
                self._take(identity, payload, out)
        return out

    def _session(self, identity: bytes) -> Session:
        session = self.sessions.get(identity)
        if session is None:
            def send(lines: list[bytes], identity: bytes = identity) -> None:
                backlog = self.backlogs.get(identity)
                if backlog is not None:  # keep the order: behind what already waits
                    backlog.extend(line[:-1] for line in lines)
                    return
                self._send(identity, deque(line[:-1] for line in lines))
            session = self.sessions[identity] = Session(identity, send, self.envelope)
        return session

    def _send(self, identity: bytes, replies: deque[bytes]) -> None:
        """Send until the client's pipe is full; what is left becomes its backlog."""
        send = self.socket.send_multipart
        while replies:
            try:
                send([identity, replies[0]], zmq.NOBLOCK)
            except zmq.Again:  # the client is not reading: keep the rest, in order
                self.backlogs[identity] = replies
                return
            except zmq.ZMQError as exc:  # EHOSTUNREACH: the client is gone
                self.undeliverable += len(replies)
                log.info("client %s is gone: %d replies undeliverable (%s)", identity.hex(),
                         len(replies), exc.strerror)
                self._forget(identity)
                return
            replies.popleft()
        self.backlogs.pop(identity, None)

    def flush_backlogs(self) -> None:
        """Try again to hand waiting replies to ZeroMQ (called every turn of the loop)."""
        for identity in list(self.backlogs):
            self._send(identity, self.backlogs.pop(identity))

    def _forget(self, identity: bytes) -> None:
        self.backlogs.pop(identity, None)
        parked = self.parked.pop(identity, None)
        if parked:
            self.parked_count -= len(parked)

    def waiting(self) -> bool:
        """True while replies or requests of any client wait here."""
        return bool(self.backlogs or self.parked)

    def forget_idle(self, now: float) -> None:
        for identity, session in list(self.sessions.items()):
            if (not session.busy() and identity not in self.backlogs
                    and now - session.last_active > IDLE_SESSION):
                del self.sessions[identity]

    def close(self) -> None:
        self.socket.close()
