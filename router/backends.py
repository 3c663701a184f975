"""The back-end processes of one role, connected to a ROUTER socket the router binds.

Back-ends announce themselves with `hello` and keep talking (`status` about
twice a second); one silent for SILENCE seconds, or whose process the
supervisor saw exit, is dropped and its unanswered requests handed back.

Commands are spread over the ready write sides by stream (`owner`): each stream
has one write side while the set of write sides stays the same, so its
aggregate stays cached in one process, and a lost write side's streams, and
only those, move to the others.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from common import wire

SILENCE = 2.0
MAX_MESSAGE = 64 << 20  # bytes: see Pool.__init__
log = logging.getLogger("router")


@dataclass(eq=False)  # members are told apart by identity, never by their fields
class Member:
    identity: bytes
    role: str
    pid: int = 0
    ready: bool = False
    position: int = 0
    counters: dict = field(default_factory=dict)
    last_seen: float = 0.0
    inflight: dict = field(default_factory=dict)  # seq -> Pending
    exclusive: bool = True  # a write side whose store has one writer (wire.Report)
    # This member's weight in the spreading rule: a hash of its identity, made once.
    seed: int = 0

    def __post_init__(self) -> None:
        self.seed = stable_hash(self.identity)


_MASK = (1 << 64) - 1


def stable_hash(data: bytes) -> int:
    """64 bits of BLAKE2b: the same in every process and run (Python's hash() of a str or
    bytes is salted per process, so two routers, or one restarted, would disagree)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _mix(x: int) -> int:
    """SplitMix64's finaliser: spreads a 64-bit value over all 64 bits, so that the
    scores of one stream on two members are as good as independent."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def stream_hash(stream_id: str) -> int:
    # surrogatepass: JSON may carry a lone surrogate, which strict UTF-8 refuses.
    return stable_hash(stream_id.encode("utf-8", "surrogatepass"))


def owner(stream_id: str, members: list[Member]) -> Member:
    """The member a stream's commands go to: the highest score of stream and member
    (rendezvous hashing). Stable: it depends only on the stream id and the members'
    identities. Balanced: every member wins for about 1/n of the streams. And a member
    that leaves takes only its own streams with it, spread evenly over the others, while
    every other stream stays where it was (with `hash % n` over a sorted list, a member
    leaving would move most streams, and cool every write side's cache at once)."""
    h = stream_hash(stream_id)
    return max(members, key=lambda m: (_mix(h ^ m.seed), m.identity))


class Pool:
    def __init__(self, ctx: zmq.Context, role: str, endpoint: str, drops: wire.Drops,
                 secure=None) -> None:
        self.role = role
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.LINGER, 0)
        # Past this a message is refused before it is taken in whole, and costs its sender
        # the connection: no back-end sends anything near it (results and answers come in
        # messages of at most a few thousand requests, answered for at most 0.1 s a round).
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        if secure is not None:
            secure.server(self.socket, role)
        self.socket.bind(endpoint)
        self.members: dict[bytes, Member] = {}
        self.drops = drops
        self._turn = 0
        self._refused: set[bytes] = set()  # write sides not taken (see _conflicts), logged
        # What each kind of message from a back-end of this role decodes as.
        answer_kind = (wire.RESULTS, wire.command_results) if role == "write" else \
            (wire.ANSWERS, wire.answers)
        self._decoders = {wire.HELLO: self._report, wire.STATUS: self._report,
                          answer_kind[0]: answer_kind[1]}

    def _report(self, body: bytes) -> wire.Report:
        return wire.report(body, self.role)

    def receive(self) -> list[tuple[Member, bytes, Any]]:
        """Every waiting message as (member, kind, decoded record); hello and status update
        the member. A message that does not decode is dropped and counted."""
        out = []
        now = time.monotonic()
        while True:
            try:
                parts = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            try:
                identity, kind, body = wire.frames(parts, 3, "a back-end message")
                decode = self._decoders.get(kind)
                if decode is None:
                    raise wire.BadFrame(f"unknown kind {kind[:32]!r}")
                record = decode(body)
            except wire.BadFrame as bad:
                self.drops.drop(f"the {self.role} endpoint", parts[0], bad)
                continue
            member = self.members.get(identity)
            if member is None:
                if kind not in (wire.HELLO, wire.STATUS):
                    # A member already dropped (its work was handed back), or a peer that
                    # never said hello: either way not a member's to answer.
                    self.drops.drop(f"the {self.role} endpoint", identity,
                                    f"{kind.decode(errors='replace')} from a peer that is not "
                                    "a member")
                    continue
                if kind == wire.STATUS and self._conflicts(identity, record):
                    continue
                member = self.members[identity] = Member(identity, self.role)
            member.last_seen = now
            if kind in (wire.HELLO, wire.STATUS):
                member.pid, member.ready = record.pid, record.ready
                member.position, member.counters = record.position, record.counters
                member.exclusive = record.exclusive
            out.append((member, kind, record))

    def _conflicts(self, identity: bytes, record: wire.Report) -> bool:
        """Whether a write side the router does not know, met through its status (after a
        router restart, or once dropped for silence), cannot join those it knows: a store
        with one writer has room for one write side, so of two on such stores (in memory,
        or on another host's copy) the one already serving keeps the commands, rather than
        having them split between two stores. Its hello, sent when it starts, would have
        replaced the others; a status never does."""
        if self.role != "write" or not self.members:
            return False
        if not (record.exclusive or any(m.exclusive for m in self.members.values())):
            return False
        if identity not in self._refused:
            if len(self._refused) >= 4096:
                self._refused.clear()  # a bound on memory; at worst a line logged again
            self._refused.add(identity)
            log.warning("write side pid %d not taken: it, or a write side already serving, "
                        "has a store with one writer", record.pid)
        return True

    def ready(self) -> list[Member]:
        return [m for m in self.members.values() if m.ready]

    def replaced_by(self, newcomer: Member) -> list[Member]:
        """Drop the write sides a newly started one replaces, and return them: all others
        when its store has one writer (that writer can only be it: the one before is gone,
        and what it had not answered must reach the newcomer before any newer command);
        else only those whose store has one writer (they cannot share a store with it).
        Write sides sharing a store stay: a newcomer among them is one more."""
        return self._drop([m for m in self.members.values() if m is not newcomer
                           and (newcomer.exclusive or m.exclusive)])

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
