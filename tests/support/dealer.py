"""A plain pyzmq DEALER client of a router in service mode: one JSON request per frame."""
from __future__ import annotations

import json
import time
from typing import Any

import zmq
import zmq.auth

from tests.support import bus


class Dealer:
    """A DEALER connected to the router's client endpoint.

    curve: (server public key file, client key pair file) for a CURVE client; plain without.
    send_timeout: seconds a send may wait for a peer; a refused CURVE client has none, and
    without a limit its send would block for ever."""

    def __init__(self, endpoint: str, ctx: zmq.Context | None = None,
                 curve: tuple[str, str] | None = None, send_timeout: float | None = None) -> None:
        self.own_ctx = ctx is None
        self.ctx = ctx or zmq.Context()
        self.socket = self.ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if send_timeout is not None:
            self.socket.setsockopt(zmq.SNDTIMEO, int(send_timeout * 1000))
        if curve is not None:
            server_public, key_pair = curve
            self.socket.curve_serverkey = zmq.auth.load_certificate(server_public)[0]
            self.socket.curve_publickey, self.socket.curve_secretkey = \
                zmq.auth.load_certificate(key_pair)
        self.socket.connect(endpoint)

    def send(self, *bodies: Any) -> None:
        for body in bodies:
            self.socket.send(body if isinstance(body, bytes) else json.dumps(body).encode())

    def recv_frames(self, timeout: float = 10.0) -> list[bytes] | None:
        """The next reply's frames, or None if nothing came within timeout seconds."""
        if not self.socket.poll(int(timeout * 1000)):
            return None
        return self.socket.recv_multipart()

    def recv(self, timeout: float = 10.0) -> dict:
        frames = self.recv_frames(timeout)
        assert frames is not None, f"no reply within {timeout} s"
        return json.loads(frames[-1])

    def ask(self, body: dict, timeout: float = 10.0) -> bytes | None:
        """Send one request; its reply frame, or None if it could not go out or no reply came
        within timeout seconds (replies to older requests are skipped)."""
        try:
            self.send(body)
        except zmq.Again:
            return None
        deadline = time.monotonic() + timeout
        while True:
            frames = self.recv_frames(max(0.0, deadline - time.monotonic()))
            if frames is None:
                return None
            if json.loads(frames[-1]).get("in_reply_to") == body["msg_id"]:
                return frames[-1]

    def request(self, body: dict, timeout: float = 10.0) -> dict:
        """Send one request and return its reply (replies to older requests are skipped)."""
        frame = self.ask(body, timeout)
        assert frame is not None, f"no reply to msg_id {body['msg_id']} within {timeout} s"
        return json.loads(frame)

    def serves(self, msg_id: int, timeout: float) -> bool:
        """Whether a GetUser of the sample user gets a query result within timeout seconds:
        every process on the way (router, a read side) is up."""
        reply = self.ask(bus.get_user("user-123", msg_id=msg_id), timeout)
        return reply is not None and json.loads(reply)["type"] == "query_result"

    def close(self) -> None:
        self.socket.close(0)
        if self.own_ctx:
            self.ctx.term()
