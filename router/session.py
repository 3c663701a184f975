"""One client's stream of requests: its own reply order and its own read-your-writes.

Stdin is one session; in service mode every ZeroMQ client is another. A
session's queries wait for the session's earlier commands, never for another
client's.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from common import wire
from router import render
from router.order import OrderBuffer
from router.parse import Parsed


@dataclass(eq=False, slots=True)
class Pending:
    """A request handed to a back-end, waiting for its answer."""
    seq: int            # router-wide: names the request on the wire
    local: int          # the session's own count: its place in the reply order
    session: "Session"
    parsed: Parsed
    deadline: float
    floor: int | None = None  # store head known when the request was read
    command_id: str = ""
    at: int = 0
    answered: bool = False
    position: int | None = None
    # Handed to a back-end at least once: from then on the outcome of a command is
    # unknown until its result arrives, so its error can only be a timeout (code 0).
    sent: bool = False
    # The write side holding this command now (sent, no result yet, not dropped), if any.
    on: Any = None

    def request(self) -> wire.CommandRequest | wire.QueryRequest:
        """The record that carries this request to a back-end."""
        p = self.parsed
        if p.kind == "command":
            return wire.CommandRequest(self.seq, p.context, p.name, p.args, self.command_id,
                                       p.expected_version)
        return wire.QueryRequest(self.seq, p.context, p.name, p.args, self.at)


@dataclass(eq=False)  # sessions are compared and hashed by identity
class Session:
    name: Any
    send: Callable[[list[bytes]], None]  # writes reply lines out, in order
    envelope: bool = False
    order: OrderBuffer = field(default_factory=OrderBuffer)
    outstanding: deque = field(default_factory=deque)  # its commands, input order
    waiting: deque = field(default_factory=deque)      # its queries held for earlier commands
    position: int | None = None  # store head after its last answered command
    count: int = 0
    # Its commands on a write side now, and which one (all on the same one: see
    # Router._dispatch_commands): a command for another write side waits until these
    # are back, so that the session's commands run in its input order.
    writer: Any = None
    in_flight: int = 0
    last_active: float = field(default_factory=time.monotonic)

    def next_local(self) -> int:
        self.count += 1
        self.last_active = time.monotonic()
        return self.count - 1

    def reply(self, local: int, parsed: Parsed, body: dict) -> None:
        self.order.put(local, render.line(body, self.envelope, parsed.src, parsed.dest))

    def reply_at_its_turn(self, local: int, parsed: Parsed,
                          make_body: Callable[[int], dict]) -> None:
        """A reply rendered only when it goes out; make_body gets the number of replies
        going out just before it."""
        self.order.put(local, lambda before: render.line(make_body(before), self.envelope,
                                                         parsed.src, parsed.dest))

    def release(self, head: int | None, outbox: list[Pending]) -> None:
        """Move queries whose earlier commands are all answered to the outbox, with `at` set."""
        out = self.outstanding
        while self.waiting:
            query = self.waiting[0]
            if query.answered:
                self.waiting.popleft()
                continue
            while out and out[0].answered and out[0].local < query.local:
                self._advance(out.popleft())
            if out and out[0].local < query.local:
                return
            known = [v for v in (self.position, query.floor) if v is not None]
            if not known and head is None:
                return  # no write side has said where the store stands yet
            query.at = max(known) if known else head
            outbox.append(self.waiting.popleft())
        while out and out[0].answered:
            self._advance(out.popleft())

    def _advance(self, command: Pending) -> None:
        if command.position is not None:
            self.position = max(self.position or 0, command.position)

    def flush(self) -> int:
        lines = self.order.take()
        if lines:
            self.send(lines)
        return len(lines)

    def busy(self) -> bool:
        return bool(len(self.order) or self.outstanding or self.waiting)
