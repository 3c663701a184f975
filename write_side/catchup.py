"""Serves stored events after a position, in chunks, to subscribers that missed some."""
from __future__ import annotations

import logging

import zmq

from common import wire
from write_side.store import EventStore

MAX_CHUNK = 5_000
log = logging.getLogger("write")


class CatchupServer:
    def __init__(self, ctx: zmq.Context, endpoint: str, store: EventStore, secure=None) -> None:
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if secure is not None:
            secure.server(self.socket, "catch-up")
        self.socket.bind(endpoint)
        self.store = store
        self.served = 0

    def serve_waiting(self) -> None:
        """Answer every request already queued, without blocking."""
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._answer(frames)

    def _answer(self, frames: list[bytes]) -> None:
        identity, body = frames[0], frames[-1]
        try:
            request = wire.unpack(body)
            after = int(request.get("after", 0))
            limit = max(1, min(int(request.get("limit", MAX_CHUNK)), MAX_CHUNK))
        except Exception:
            log.warning("malformed catch-up request ignored")
            return
        bodies = self.store.bodies_after(after, limit)
        self.served += len(bodies)
        reply = wire.splice_map({"head": self.store.head, "req": request.get("req")},
                                "events", bodies)
        self.socket.send_multipart([identity, reply])

    def close(self) -> None:
        self.socket.close()
