"""The router's loop: requests in from its ports, back-end messages, replies out in order.

Consistency: commands go to the write side at once, in input order. A query
waits until every earlier command of its session has been answered, then goes
to a read side with `at` = the store position right after the last of those
commands (or the head known when the query arrived, if later); the read side
answers as of exactly that position, so a query sees every command before it
and none after it.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from typing import Callable

import zmq

from common import command_ids, wire
from common.config import Config
from common.stopping import drain_pipe
from router import render
from router.backends import Member, Pool
from router.parse import Parsed
from router.ports import ClientPort, StdinPort
from router.session import Pending, Session

log = logging.getLogger("router")
# Stop reading input while this many requests wait (backpressure). The deadline of a
# request runs from when it is read, so the backlog must stay well under what the
# back-ends get through in one deadline, even on a slow or loaded machine; it still
# leaves room for large batches.
MAX_PENDING = 10_000
CHUNK = 1024  # requests per message to a back-end: a back-end can bound its batches by messages


class Router:
    def __init__(self, cfg: Config, ctx: zmq.Context, stdin: StdinPort | None = None,
                 clients: ClientPort | None = None, secure=None) -> None:
        self.cfg = cfg
        self.write = Pool(ctx, "write", cfg.write_endpoint, secure)
        self.read = Pool(ctx, "read", cfg.read_endpoint, secure)
        self.stdin, self.clients = stdin, clients
        self.secure = secure
        self.pending: dict[int, Pending] = {}
        self.by_deadline: deque[Pending] = deque()
        self.cmd_outbox: list[Pending] = []
        self.qry_outbox: list[Pending] = []
        self.stats_waiting: list[tuple[Session, int, Parsed, float]] = []
        self.active: set = set()  # sessions with something to release or flush
        self.head: int | None = None  # the store head as far as the router knows
        self.seq = 0
        self.boot = uuid.uuid4().hex[:12]
        self.draining = False
        self.replies = 0
        self.on_tick: Callable[[], list[int]] = lambda: []  # supervisor: pids that exited
        self.wake_fd: int | None = None  # readable when a signal asks us to drain

    # ---- input --------------------------------------------------------------------------

    def accept(self, session: Session, parsed: Parsed, now: float) -> None:
        local = session.next_local()
        self.active.add(session)
        if parsed.kind == "error":
            session.reply(local, parsed, render.error(parsed.msg_id, *parsed.error))
        elif parsed.kind == "init":
            session.reply(local, parsed, render.init_ok(parsed.msg_id))
        elif parsed.kind == "stats":
            # Answered once the back-ends have introduced themselves (or a second passed).
            self.stats_waiting.append((session, local, parsed, now + min(1.0, self.cfg.timeout)))
        else:
            pending = Pending(self.seq, local, session, parsed, now + self.cfg.timeout,
                              floor=self.head)
            self.seq += 1
            self.pending[pending.seq] = pending
            self.by_deadline.append(pending)
            if parsed.kind == "cmd":
                pending.command_id = (command_ids.from_client(parsed.context, parsed.command_id)
                                      if parsed.command_id
                                      else command_ids.from_router(self.boot, pending.seq))
                self.cmd_outbox.append(pending)
                session.outstanding.append(pending)
            else:
                session.waiting.append(pending)

    def _answer(self, pending: Pending, body: dict) -> None:
        self.pending.pop(pending.seq, None)
        pending.answered = True
        pending.session.reply(pending.local, pending.parsed, body)
        self.active.add(pending.session)

    def _learn_head(self, position: int) -> None:
        self.head = position if self.head is None else max(self.head, position)

    # ---- back-end messages --------------------------------------------------------------

    def on_write_messages(self) -> None:
        for member, kind, body in self.write.receive():
            if kind == wire.HELLO:
                # There is one write side at a time (the data-folder lock sees to that): a
                # new one means the old is gone, and what it had not answered must reach
                # the new one before any newer command, to keep input order.
                self.drop_members(self.write.drop_others(member))
            if kind in (wire.HELLO, wire.STATUS):
                self._learn_head(body["position"])
            elif kind == wire.RESULTS:
                for seq, result, position in body:
                    member.inflight.pop(seq, None)
                    self._learn_head(position)
                    pending = self.pending.get(seq)
                    if pending is not None:
                        pending.position = position
                        self._answer(pending, render.command_result(pending.parsed.msg_id, result))

    def on_read_messages(self) -> None:
        for member, kind, body in self.read.receive():
            if kind == wire.ANSWERS:
                member.position = max(member.position, body["position"])
                for seq, result in body["items"]:
                    member.inflight.pop(seq, None)
                    pending = self.pending.get(seq)
                    if pending is not None:
                        self._answer(pending, render.query_result(pending.parsed.msg_id, result))

    # ---- ordering, dispatch, deadlines ---------------------------------------------------

    def release_queries(self) -> None:
        for session in self.active:
            session.release(self.head, self.qry_outbox)

    def answer_stats(self, now: float) -> None:
        if not self.stats_waiting:
            return
        known = self.write.ready() and self.read.ready()
        held = []
        for session, local, parsed, deadline in self.stats_waiting:
            if known or now >= deadline or self.draining:
                session.reply(local, parsed, render.stats_result(parsed.msg_id, self.stats()))
                self.active.add(session)
            else:
                held.append((session, local, parsed, deadline))
        self.stats_waiting = held

    def dispatch(self) -> None:
        self.cmd_outbox = [p for p in self.cmd_outbox if not p.answered]
        member = self.write.newest_ready()
        if self.cmd_outbox and member is not None:
            # Take the outbox first: a failed send puts its batch back into it.
            batch, self.cmd_outbox = self.cmd_outbox, []
            self._send(self.write, member, wire.CMDS, batch)
        self.qry_outbox = [p for p in self.qry_outbox if not p.answered]
        members = self.read.ready()
        if self.qry_outbox and members:
            batch, self.qry_outbox = self.qry_outbox, []
            for member, share in self._spread(batch, members).values():
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
        """Send in messages of at most CHUNK requests; what cannot go now waits in its outbox."""
        outbox = self.cmd_outbox if kind == wire.CMDS else self.qry_outbox
        for start in range(0, len(items), CHUNK):
            chunk, body = self._pack(items[start:start + CHUNK])
            if not chunk:
                continue
            if not pool.send(member, kind, body):  # unreachable or full: keep the rest
                outbox.extend(p for p in items[start:] if not p.answered)
                outbox.sort(key=lambda p: p.seq)
                return
            for p in chunk:
                member.inflight[p.seq] = p

    def _pack(self, items: list[Pending]) -> tuple[list[Pending], bytes]:
        """Pack a batch; answer at once any request the wire cannot carry (e.g. an integer
        over 64 bits) and pack the rest."""
        try:
            return items, wire.pack([p.wire_form() for p in items])
        except wire.PACK_ERRORS:
            good = []
            for p in items:
                try:
                    wire.pack(p.wire_form())
                    good.append(p)
                except wire.PACK_ERRORS:
                    self._fail(p, 12, "malformed request: a value is out of range")
            return good, wire.pack([p.wire_form() for p in good])

    def _fail(self, pending: Pending, code: int, text: str) -> None:
        self._answer(pending, render.error(pending.parsed.msg_id, code, text))

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
        head = self.head or 0
        processes = [{"role": m.role, "pid": m.pid, "ready": m.ready, "position": m.position,
                      "lag": max(0, head - m.position), "counters": m.counters}
                     for pool in (self.write, self.read) for m in pool.members.values()]
        router = {"role": "router", "pid": os.getpid(), "requests": self.seq,
                  "replies": self.replies, "pending": len(self.pending), "head": head}
        return {"router": router, "processes": processes}

    # ---- the loop -------------------------------------------------------------------------

    def done(self) -> bool:
        """Stdin mode ends at end of input, service mode on a signal; both once all is answered."""
        ending = self.draining or (self.stdin is not None and self.stdin.eof)
        return (ending and not self.pending and not self.stats_waiting
                and not any(s.busy() for s in self._sessions()))

    def _sessions(self) -> list[Session]:
        found = [self.stdin.session] if self.stdin else []
        return found + (list(self.clients.sessions.values()) if self.clients else [])

    def flush(self) -> None:
        for session in self.active:
            self.replies += session.flush()
        self.active = {s for s in self.active if s.waiting}

    def run(self) -> None:
        poller = zmq.Poller()
        for sock in (self.write.socket, self.read.socket):
            poller.register(sock, zmq.POLLIN)
        if self.wake_fd is not None:
            poller.register(self.wake_fd, zmq.POLLIN)
        reading = serving = False
        last_sweep = 0.0
        while not self.done():
            reading = self._watch_stdin(poller, reading)
            serving = self._watch_clients(poller, serving)
            events = dict(poller.poll(self._poll_timeout()))
            now = time.monotonic()
            if reading and events.get(self.stdin.in_fd):
                for session, parsed in self.stdin.read():
                    self.accept(session, parsed, now)
            if serving and self.clients.socket in events:
                for session, parsed in self.clients.read():
                    self.accept(session, parsed, now)
            if self.wake_fd is not None and events.get(self.wake_fd):
                drain_pipe(self.wake_fd)
            if self.write.socket in events:
                self.on_write_messages()
            if self.read.socket in events:
                self.on_read_messages()
            if now - last_sweep > 0.1:
                self._sweep(now)
                last_sweep = now
            self.expire(now)
            self.answer_stats(now)
            self.release_queries()
            self.dispatch()
            self.flush()

    def _watch_stdin(self, poller: zmq.Poller, reading: bool) -> bool:
        """Read stdin only while it is open, we are not draining, and the backlog is small."""
        if self.stdin is None:
            return False
        want = not (self.stdin.eof or self.draining) and len(self.pending) < MAX_PENDING
        return _watch(poller, self.stdin.in_fd, reading, want)

    def _watch_clients(self, poller: zmq.Poller, serving: bool) -> bool:
        """Take client requests while not draining and the backlog is small; meanwhile
        they wait in ZeroMQ's queues, whose high-water marks push back on the clients."""
        if self.clients is None:
            return False
        want = not self.draining and len(self.pending) < MAX_PENDING
        return _watch(poller, self.clients.socket, serving, want)

    def _sweep(self, now: float) -> None:
        for pid in self.on_tick():
            self.drop_members(self.write.drop_pid(pid) + self.read.drop_pid(pid))
        self.drop_members(self.write.drop_silent(now) + self.read.drop_silent(now))
        if self.clients:
            self.clients.forget_idle(now)
        if self.secure is not None:
            self.secure.report_refusals()

    def _poll_timeout(self) -> int:
        if self.by_deadline:
            left = self.by_deadline[0].deadline - time.monotonic()
            return max(1, min(100, int(left * 1000) + 1))
        return 100

    def close(self) -> None:
        self.write.close()
        self.read.close()
        if self.clients:
            self.clients.close()


def _watch(poller: zmq.Poller, source, watching: bool, want: bool) -> bool:
    """(Un)register a source for input so the poller reflects `want`; returns `want`."""
    if want and not watching:
        poller.register(source, zmq.POLLIN)
    elif watching and not want:
        poller.unregister(source)
    return want
