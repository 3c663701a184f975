"""The router's loop: stdin lines in, back-end messages, reply lines out in input order.

Consistency: commands go to the write side at once, in input order. A query
waits until every command read before it has been answered, then goes to a
read side with `at` = the store position right after the last of those
commands; the read side answers as of exactly that position, so a query sees
every command before it and none after it.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import msgpack
import zmq

from common import wire
from common.config import Config
from common.stopping import drain_pipe
from router import render
from router.backends import Member, Pool
from router.lines import LineSplitter
from router.order import OrderBuffer
from router.parse import Parsed, parse

log = logging.getLogger("router")
READ_CHUNK = 1 << 20
MAX_PENDING = 200_000  # stop reading input while this many requests wait (backpressure)


@dataclass
class Pending:
    """A request handed to a back-end, waiting for its answer."""
    seq: int
    parsed: Parsed
    deadline: float
    command_id: str = ""
    at: int = 0
    answered: bool = False
    position: int | None = None

    def wire_form(self) -> list:
        p = self.parsed
        if p.kind == "cmd":
            return [self.seq, p.context, p.name, p.args, self.command_id, p.expected_version]
        return [self.seq, p.context, p.name, p.args, self.at]


class Router:
    def __init__(self, cfg: Config, ctx: zmq.Context, in_fd: int = 0, out_fd: int = 1) -> None:
        self.cfg = cfg
        self.write = Pool(ctx, "write", cfg.write_endpoint)
        self.read = Pool(ctx, "read", cfg.read_endpoint)
        self.in_fd, self.out_fd = in_fd, out_fd
        self.splitter = LineSplitter(cfg.max_line)
        self.order = OrderBuffer()
        self.pending: dict[int, Pending] = {}
        self.by_deadline: deque[Pending] = deque()
        self.cmd_outbox: list[Pending] = []
        self.qry_outbox: list[Pending] = []
        self.outstanding: deque[Pending] = deque()  # commands, input order
        self.waiting: deque[Pending] = deque()      # queries held for earlier commands
        self.stats_waiting: list[tuple[int, Parsed, float]] = []
        self.position: int | None = None            # store head after the last answered command
        self.seq = 0
        self.boot = uuid.uuid4().hex[:12]
        self.eof = False
        self.draining = False
        self.replies = 0
        self.on_tick: Callable[[], list[int]] = lambda: []  # supervisor: pids that exited
        self.wake_fd: int | None = None  # readable when a signal asks us to drain

    # ---- input --------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        lines = self.splitter.feed(chunk) if chunk else self.splitter.finish()
        now = time.monotonic()
        for raw in lines:
            self.accept(parse(raw, self.cfg.max_line), now)

    def accept(self, parsed: Parsed, now: float) -> None:
        seq = self.seq
        self.seq += 1
        if parsed.kind == "error":
            self._reply(seq, parsed, render.error(parsed.msg_id, *parsed.error))
        elif parsed.kind == "init":
            self._reply(seq, parsed, render.init_ok(parsed.msg_id))
        elif parsed.kind == "stats":
            # Answered once the back-ends have introduced themselves (or a second passed).
            self.stats_waiting.append((seq, parsed, now + min(1.0, self.cfg.timeout)))
        else:
            pending = Pending(seq, parsed, now + self.cfg.timeout)
            self.pending[seq] = pending
            self.by_deadline.append(pending)
            if parsed.kind == "cmd":
                pending.command_id = (f"c:{parsed.context}:{parsed.command_id}"
                                      if parsed.command_id else f"n:{self.boot}:{seq}")
                self.cmd_outbox.append(pending)
                self.outstanding.append(pending)
            else:
                self.waiting.append(pending)

    def _reply(self, seq: int, parsed: Parsed, body: dict) -> None:
        self.order.put(seq, render.line(body, self.cfg.envelope, parsed.src, parsed.dest))

    # ---- back-end messages --------------------------------------------------------------

    def on_write_messages(self) -> None:
        for member, kind, body in self.write.receive():
            if kind == wire.HELLO and self.position is None:
                self.position = body["position"]
            elif kind == wire.RESULTS:
                for seq, result, position in body:
                    member.inflight.pop(seq, None)
                    pending = self.pending.pop(seq, None)
                    if pending is not None:
                        pending.answered, pending.position = True, position
                        self._reply(seq, pending.parsed,
                                    render.command_result(pending.parsed.msg_id, result))

    def on_read_messages(self) -> None:
        for member, kind, body in self.read.receive():
            if kind == wire.ANSWERS:
                member.position = max(member.position, body["position"])
                for seq, result in body["items"]:
                    member.inflight.pop(seq, None)
                    pending = self.pending.pop(seq, None)
                    if pending is not None:
                        pending.answered = True
                        self._reply(seq, pending.parsed,
                                    render.query_result(pending.parsed.msg_id, result))

    # ---- ordering, dispatch, deadlines ---------------------------------------------------

    def release_queries(self) -> None:
        """Move queries whose earlier commands are all answered to the outbox, with their `at`."""
        out = self.outstanding
        while self.waiting:
            query = self.waiting[0]
            if query.answered:
                self.waiting.popleft()
                continue
            while out and out[0].answered and out[0].seq < query.seq:
                self._advance(out.popleft())
            if (out and out[0].seq < query.seq) or self.position is None:
                break
            query.at = self.position
            self.qry_outbox.append(self.waiting.popleft())
        while out and out[0].answered and not self.waiting:
            self._advance(out.popleft())

    def answer_stats(self, now: float) -> None:
        if not self.stats_waiting:
            return
        known = self.write.ready() and self.read.ready()
        held = []
        for seq, parsed, deadline in self.stats_waiting:
            if known or now >= deadline or self.draining:
                self._reply(seq, parsed, render.stats_result(parsed.msg_id, self.stats()))
            else:
                held.append((seq, parsed, deadline))
        self.stats_waiting = held

    def _advance(self, command: Pending) -> None:
        if command.position is not None:
            self.position = max(self.position or 0, command.position)

    def dispatch(self) -> None:
        self.cmd_outbox = [p for p in self.cmd_outbox if not p.answered]
        member = self.write.newest_ready()
        if self.cmd_outbox and member is not None:
            self._send(self.write, member, wire.CMDS, self.cmd_outbox)
            self.cmd_outbox = []
        self.qry_outbox = [p for p in self.qry_outbox if not p.answered]
        members = self.read.ready()
        if self.qry_outbox and members:
            shares = self._spread(self.qry_outbox, members)
            self.qry_outbox = []
            for member, share in shares.values():
                self._send(self.read, member, wire.QUERIES, share)

    def _spread(self, queries: list[Pending], members: list[Member]) -> dict:
        """Share queries round-robin over the replicas already at each query's position
        (over all of them when none is known to be there yet)."""
        start = self.read.next_turn(len(members))
        shares: dict[bytes, tuple[Member, list[Pending]]] = {}
        for i, query in enumerate(queries):
            fresh = [m for m in members if m.position >= query.at] or members
            member = fresh[(start + i) % len(fresh)]
            shares.setdefault(member.identity, (member, []))[1].append(query)
        return shares

    def _send(self, pool: Pool, member: Member, kind: bytes, items: list[Pending]) -> None:
        items = self._packable(items)
        if pool.send(member, kind, [p.wire_form() for p in items]):
            for p in items:
                member.inflight[p.seq] = p
        else:  # unreachable or full: keep them for the next round
            (self.cmd_outbox if kind == wire.CMDS else self.qry_outbox).extend(items)

    def _packable(self, items: list[Pending]) -> list[Pending]:
        """Answer at once any request the wire cannot carry (e.g. an integer over 64 bits)."""
        try:
            wire.pack([p.wire_form() for p in items])
            return items
        except (OverflowError, ValueError, TypeError, msgpack.PackException):
            good = []
            for p in items:
                try:
                    wire.pack(p.wire_form())
                    good.append(p)
                except (OverflowError, ValueError, TypeError, msgpack.PackException):
                    self._fail(p, 12, "malformed request: a value is out of range")
            return good

    def _fail(self, pending: Pending, code: int, text: str) -> None:
        self.pending.pop(pending.seq, None)
        pending.answered = True
        self._reply(pending.seq, pending.parsed, render.error(pending.parsed.msg_id, code, text))

    def expire(self, now: float) -> None:
        queue = self.by_deadline
        while queue and (queue[0].answered or queue[0].deadline <= now):
            pending = queue.popleft()
            if pending.answered:
                continue
            role = "write" if pending.parsed.kind == "cmd" else "read"
            pool = self.write if role == "write" else self.read
            if pool.ready():
                self._fail(pending, 0, f"timeout: no answer within {self.cfg.timeout:g} s")
            else:
                self._fail(pending, 11, f"temporarily unavailable: no {role} side is up")

    def abort(self, reason: str) -> None:
        """Stop taking input and answer everything waiting with error 11: the node cannot run."""
        log.error("stopping: %s", reason)
        self.draining = True
        for pending in list(self.pending.values()):
            self._fail(pending, 11, f"temporarily unavailable: {reason}")

    def drop_members(self, members: list[Member]) -> None:
        """Hand a lost back-end's unanswered requests back to the outboxes, in input order."""
        for member in members:
            log.warning("%s side pid %s lost; re-sending %d requests", member.role, member.pid,
                        len(member.inflight))
            box = self.cmd_outbox if member.role == "write" else self.qry_outbox
            box.extend(member.inflight.values())
            box.sort(key=lambda p: p.seq)
            member.inflight.clear()

    # ---- stats ---------------------------------------------------------------------------

    def stats(self) -> dict:
        head = max([self.position or 0] + [m.position for m in self.write.members.values()])
        processes = [{"role": m.role, "pid": m.pid, "ready": m.ready, "position": m.position,
                      "lag": max(0, head - m.position), "counters": m.counters}
                     for pool in (self.write, self.read) for m in pool.members.values()]
        router = {"role": "router", "pid": os.getpid(), "requests": self.seq,
                  "replies": self.replies, "pending": len(self.pending), "head": head}
        return {"router": router, "processes": processes}

    # ---- the loop -------------------------------------------------------------------------

    def done(self) -> bool:
        return ((self.eof or self.draining) and not self.pending and not self.stats_waiting
                and not len(self.order))

    def flush(self) -> None:
        lines = self.order.take()
        if not lines:
            return
        self.replies += len(lines)
        data = memoryview(b"".join(lines))
        while data:
            written = os.write(self.out_fd, data)
            data = data[written:]

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.write.socket, zmq.POLLIN)
        poller.register(self.read.socket, zmq.POLLIN)
        if self.wake_fd is not None:
            poller.register(self.wake_fd, zmq.POLLIN)
        reading = False
        last_sweep = 0.0
        while not self.done():
            want = not (self.eof or self.draining) and len(self.pending) < MAX_PENDING
            if want != reading:
                if want:
                    poller.register(self.in_fd, zmq.POLLIN)
                else:
                    poller.unregister(self.in_fd)
                reading = want
            events = dict(poller.poll(self._poll_timeout()))
            if reading and events.get(self.in_fd):
                self._read_input()
            if self.wake_fd is not None and events.get(self.wake_fd):
                drain_pipe(self.wake_fd)
            if self.write.socket in events:
                self.on_write_messages()
            if self.read.socket in events:
                self.on_read_messages()
            now = time.monotonic()
            if now - last_sweep > 0.1:
                self._sweep(now)
                last_sweep = now
            self.expire(now)
            self.answer_stats(now)
            self.release_queries()
            self.dispatch()
            self.flush()

    def _read_input(self) -> None:
        chunk = os.read(self.in_fd, READ_CHUNK)
        if not chunk:
            self.eof = True
        self.feed(chunk)

    def _sweep(self, now: float) -> None:
        for pid in self.on_tick():
            self.drop_members(self.write.drop_pid(pid) + self.read.drop_pid(pid))
        self.drop_members(self.write.drop_silent(now) + self.read.drop_silent(now))

    def _poll_timeout(self) -> int:
        if self.by_deadline:
            left = self.by_deadline[0].deadline - time.monotonic()
            return max(1, min(100, int(left * 1000) + 1))
        return 100

    def close(self) -> None:
        self.write.close()
        self.read.close()
