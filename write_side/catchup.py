"""Serves stored events after a position, in chunks, to subscribers that missed some."""
from __future__ import annotations

import logging
import time
from collections import OrderedDict

import zmq

from common import wire
from write_side.store import EventStore, StoreError

MAX_CHUNK = 5_000
# What a subscriber, or an attacker posing as many, can cost. A reply is up to MAX_CHUNK
# events (about a megabyte). Each peer has at most REPLIES_IN_FLIGHT replies queued (a
# subscriber asks for the next chunk while it applies one); past that its replies are
# not queued, and it asks again when its wait runs out. At most MAX_PEERS peers are
# served within PEER_WINDOW seconds; a further one is refused until one goes quiet. So
# the replies queued here stay under MAX_PEERS * REPLIES_IN_FLIGHT megabytes.
REPLIES_IN_FLIGHT = 2
MAX_PEERS = 32
PEER_WINDOW = 30.0
# Requests answered per turn of the write side's loop, so a flood of them cannot keep
# commands and liveness reports waiting.
PER_TURN = 16
MAX_REQUEST = 4096  # bytes: a request is a small map
log = logging.getLogger("write")


class CatchupServer:
    def __init__(self, ctx: zmq.Context, endpoint: str, store: EventStore, drops: wire.Drops,
                 secure=None) -> None:
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, REPLIES_IN_FLIGHT)
        self.socket.setsockopt(zmq.RCVHWM, 1000)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full peer is seen, not ignored
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST)
        if secure is not None:
            secure.server(self.socket, "events")
        self.socket.bind(endpoint)
        self.store = store
        self.drops = drops
        self.served = 0
        self.not_sent = 0  # replies to peers that were not reading, or gone
        self.peers: OrderedDict[bytes, float] = OrderedDict()  # peer -> last request, oldest first

    def serve_waiting(self) -> None:
        """Answer up to PER_TURN queued requests, without blocking; the rest wait their turn."""
        for _ in range(PER_TURN):
            try:
                parts = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                identity, body = wire.frames(parts, 2, "a catch-up request")
                request = wire.catchup_request_body(body)
            except wire.BadFrame as bad:
                self.drops.drop("the catch-up endpoint", parts[0], bad)
                continue
            if self._admit(identity):
                self._answer(identity, request)

    def _admit(self, identity: bytes) -> bool:
        """True if this peer may be served now (see MAX_PEERS)."""
        now = time.monotonic()
        peers = self.peers
        while peers and now - next(iter(peers.values())) > PEER_WINDOW:
            peers.popitem(last=False)
        if identity not in peers and len(peers) >= MAX_PEERS:
            self.drops.drop("the catch-up endpoint", identity,
                            f"{MAX_PEERS} subscribers are being served already")
            return False
        peers[identity] = now
        peers.move_to_end(identity)
        return True

    def _answer(self, identity: bytes, request: wire.CatchupRequest) -> None:
        limit = min(request.limit or MAX_CHUNK, MAX_CHUNK)
        try:
            bodies = self.store.bodies_after(request.after, limit)
        except StoreError as exc:
            # A database that is away for a while: no answer, and the subscriber asks again
            # when its wait runs out (its catch-up is retried, never fatal).
            self.not_sent += 1
            log.warning("catch-up request not answered: %s", exc)
            return
        self.served += len(bodies)
        reply = wire.catchup_reply(request.req, self.store.head, bodies)
        try:
            self.socket.send_multipart([identity, reply], zmq.NOBLOCK)
        except zmq.ZMQError:  # EAGAIN: the peer does not read; EHOSTUNREACH: it is gone
            self.not_sent += 1

    def close(self) -> None:
        self.socket.close()
