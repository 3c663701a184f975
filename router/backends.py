"""The back-end processes of one role, connected to a ROUTER socket the router binds.

Back-ends announce themselves with `hello` and keep talking (`status` about
twice a second); one silent for SILENCE seconds, or whose process the
supervisor saw exit, is dropped and its unanswered requests handed back.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from common import wire

SILENCE = 2.0


@dataclass
class Member:
    identity: bytes
    role: str
    pid: int = 0
    ready: bool = False
    position: int = 0
    counters: dict = field(default_factory=dict)
    last_seen: float = 0.0
    inflight: dict = field(default_factory=dict)  # seq -> Pending


class Pool:
    def __init__(self, ctx: zmq.Context, role: str, endpoint: str, secure=None) -> None:
        self.role = role
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.LINGER, 0)
        if secure is not None:
            secure.server(self.socket, f"{role} endpoint {endpoint}")
        self.socket.bind(endpoint)
        self.members: dict[bytes, Member] = {}
        self._turn = 0

    def receive(self) -> list[tuple[Member, bytes, Any]]:
        """Every waiting message as (member, kind, body); hello and status update the member."""
        out = []
        now = time.monotonic()
        while True:
            try:
                identity, kind, body = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            member = self.members.get(identity)
            if member is None:
                if kind not in (wire.HELLO, wire.STATUS):
                    continue  # a message from a member already dropped: its work was handed back
                member = self.members[identity] = Member(identity, self.role)
            member.last_seen = now
            payload = wire.unpack(body)
            if kind in (wire.HELLO, wire.STATUS):
                member.pid = payload["pid"]
                member.ready = payload["ready"]
                member.position = payload["position"]
                member.counters = payload.get("counters", {})
            out.append((member, kind, payload))

    def ready(self) -> list[Member]:
        return [m for m in self.members.values() if m.ready]

    def newest_ready(self) -> Member | None:
        ready = self.ready()
        return max(ready, key=lambda m: m.last_seen) if ready else None

    def next_turn(self, count: int) -> int:
        """A rotating start index, so work spreads over the members."""
        self._turn = (self._turn + 1) % max(count, 1)
        return self._turn

    def send(self, member: Member, kind: bytes, packed: bytes) -> bool:
        """Send an already packed body to one member; False if it cannot take it now."""
        try:
            self.socket.send_multipart([member.identity, kind, packed], zmq.NOBLOCK)
            return True
        except zmq.ZMQError:  # gone (unroutable) or full: the caller keeps the work
            return False

    def drop_others(self, keep: Member) -> list[Member]:
        return self._drop([m for m in self.members.values() if m is not keep])

    def drop_silent(self, now: float) -> list[Member]:
        return self._drop([m for m in self.members.values() if now - m.last_seen > SILENCE])

    def drop_pid(self, pid: int) -> list[Member]:
        return self._drop([m for m in self.members.values() if m.pid == pid])

    def _drop(self, members: list[Member]) -> list[Member]:
        for member in members:
            del self.members[member.identity]
        return members

    def close(self) -> None:
        self.socket.close()
