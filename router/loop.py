"""The router's loop: requests in from its ports, back-end messages, replies out in order.

Consistency: commands go to a write side at once, and each session's commands run
in its input order: while a session has unanswered commands on a write side, its
next ones go there too (a command may depend on any earlier one, e.g. through an
email claim, so it must not overtake it); a session with none goes to its
stream's write side (router.backends.owner). A
query waits until every earlier command of its session has been answered, then
goes to a read side with `at` = the store position right after the last of
those commands (or the head known when the query arrived, if later); the read
side answers as of exactly that position, so a query sees every command before
it and none after it. With several write sides, `head` is the highest position
any of them reported.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from typing import Any, Callable

import zmq

from common import command_ids, errors, wire
from common.errors import MALFORMED, TIMEOUT, UNAVAILABLE
from common.config import Config
from common.stopping import drain_pipe
from router import render
from router.backends import Member, Pool, owner
from router.parse import Parsed
from router.ports import ClientPort, StdinPort
from router.request_stats import ERROR_OUTCOMES, RequestStats
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
                 clients: ClientPort | None = None, secure=None,
                 drops: wire.Drops | None = None) -> None:
        self.cfg = cfg
        # Malformed messages from any peer, counted in stats.
        self.drops = drops if drops is not None else wire.Drops(log)
        self.write = Pool(ctx, "write", cfg.write_endpoint, self.drops, secure)
        self.read = Pool(ctx, "read", cfg.read_endpoint, self.drops, secure)
        self.stdin, self.clients = stdin, clients
        self.secure = secure
        self.pending: dict[int, Pending] = {}
        self.by_deadline: deque[Pending] = deque()
        self.command_outbox: list[Pending] = []
        self.query_outbox: list[Pending] = []
        self.stats_waiting: list[tuple[Session, int, Parsed, float]] = []
        self.active: set = set()  # sessions with something to release or flush
        self.head: int | None = None  # the store head as far as the router knows
        self.seq = 0
        self.boot = uuid.uuid4().hex[:12]
        self.draining = False
        self.replies = 0
        self.on_tick: Callable[[], list[int]] = lambda: []  # supervisor: pids that exited
        # More figures for stats from whoever runs the router (the launcher: restarts).
        self.extra_stats: Callable[[], dict] = dict
        self.requests = RequestStats()  # answered by kind and outcome, latencies
        self.wake_fd: int | None = None  # readable when a signal asks us to drain

    # ---- input --------------------------------------------------------------------------

    def accept(self, session: Session, parsed: Parsed, now: float) -> None:
        local = session.next_local()
        self.active.add(session)
        if parsed.kind == "error":
            session.reply(local, parsed, errors.reply(parsed.msg_id, *parsed.error))
            self.requests.count("invalid", ERROR_OUTCOMES.get(parsed.error[0], "error"))
        elif parsed.kind == "init":
            session.reply(local, parsed, render.init_ok(parsed.msg_id))
            self.requests.count("init", "ok")
        elif parsed.kind == "stats":
            # Answered once the back-ends have introduced themselves (or a second passed).
            self.stats_waiting.append((session, local, parsed, now + min(1.0, self.cfg.timeout)))
        else:
            pending = Pending(self.seq, local, session, parsed, now + self.cfg.timeout,
                              floor=self.head)
            self.seq += 1
            self.pending[pending.seq] = pending
            self.by_deadline.append(pending)
            if parsed.kind == "command":
                pending.command_id = (command_ids.from_client(parsed.context, parsed.command_id)
                                      if parsed.command_id
                                      else command_ids.from_router(self.boot, pending.seq))
                self.command_outbox.append(pending)
                session.outstanding.append(pending)
            else:
                session.waiting.append(pending)

    def _answer(self, pending: Pending, body: dict) -> None:
        self.pending.pop(pending.seq, None)
        pending.answered = True
        pending.session.reply(pending.local, pending.parsed, body)
        # Read at `accept` time `now`, whose deadline is now + timeout: no field needed.
        self.requests.answered_after(pending.parsed.kind, body, time.monotonic()
                                     - (pending.deadline - self.cfg.timeout))
        self.active.add(pending.session)

    def _learn_head(self, position: int) -> None:
        self.head = position if self.head is None else max(self.head, position)

    # ---- back-end messages --------------------------------------------------------------

    def on_write_messages(self) -> None:
        for member, kind, body in self.write.receive():
            if kind == wire.HELLO:
                # A write side whose store has one writer replaces every other one (the
                # one before it is gone: the store's lock sees to that), and what that one
                # had not answered goes back to the outbox, ahead of every newer command.
                # A write side on a shared store is one more: the others stay.
                self.drop_members(self.write.replaced_by(member))
            if kind in (wire.HELLO, wire.STATUS):
                self._learn_head(body.position)
            elif kind == wire.RESULTS:
                for r in body:
                    # Only a request this member was sent is its to answer.
                    pending = member.inflight.pop(r.seq, None)
                    if pending is None:
                        self.drops.drop("the write endpoint", member.identity,
                                        f"a result for request {r.seq}, which it was not sent")
                        continue
                    self._back(pending)
                    self._learn_head(r.position)
                    if not pending.answered:
                        pending.position = r.position
                        self._answer(pending, render.command_result(pending.parsed.msg_id,
                                                                    r.result))

    def on_read_messages(self) -> None:
        for member, kind, body in self.read.receive():
            if kind == wire.ANSWERS:
                member.position = max(member.position, body.position)
                for a in body.items:
                    pending = member.inflight.pop(a.seq, None)
                    if pending is None:
                        self.drops.drop("the read endpoint", member.identity,
                                        f"an answer to query {a.seq}, which it was not sent")
                    elif not pending.answered:
                        self._answer(pending, render.query_result(pending.parsed.msg_id,
                                                                  a.result))

    # ---- ordering, dispatch, deadlines ---------------------------------------------------

    def release_queries(self) -> None:
        for session in self.active:
            session.release(self.head, self.query_outbox)

    def answer_stats(self, now: float) -> None:
        if not self.stats_waiting:
            return
        known = self.write.ready() and self.read.ready()
        held = []
        for session, local, parsed, deadline in self.stats_waiting:
            if known or now >= deadline or self.draining:
                # Figures as of the moment the reply goes out, after the replies before it.
                session.reply_at_its_turn(local, parsed, lambda before, msg_id=parsed.msg_id:
                                          render.stats_result(msg_id, self.stats(before)))
                self.requests.count("stats", "ok")
                self.active.add(session)
            else:
                held.append((session, local, parsed, deadline))
        self.stats_waiting = held

    def dispatch(self) -> None:
        if self.command_outbox:
            self._dispatch_commands()
        self.query_outbox = [p for p in self.query_outbox if not p.answered]
        members = self.read.ready()
        if self.query_outbox and members:
            batch, self.query_outbox = self.query_outbox, []
            for member, share in self._spread(batch, members).values():
                self._send(self.read, member, wire.QUERIES, share)

    def _dispatch_commands(self) -> None:
        """Send every waiting command that may go now to its write side; the rest wait.

        A session's commands go out in its input order, and all those on a write side at
        one time are on the same one, which runs them in the order it received them: so
        they run one after the other as with a single write side, and give the same
        answers; other sessions' commands run alongside, and the store arbitrates where
        they meet (a conflict is decided again). A session with unanswered commands
        sends its next ones to the same write side, whatever their streams: a pipelining
        client then costs no round trip per command (measured: with a hold per change
        of write side instead, 10,000 pipelined pairs timed out). A session with none
        goes to its stream's write side, which keeps that stream's cache warm. Only
        when a session's write side is lost do its later commands wait, until its
        unanswered ones are handed back."""
        ready = self.write.ready()
        if not ready:
            self.command_outbox = [p for p in self.command_outbox if not p.answered]
            return
        shares: dict[bytes, tuple[Member, list[Pending]]] = {}
        going: dict[Session, Member] = {}  # where each session's commands go this round
        held: set[Session] = set()         # sessions whose next command must wait
        waiting: list[Pending] = []
        for p in self.command_outbox:
            if p.answered:
                continue
            session = p.session
            if session in held:
                waiting.append(p)
                continue
            current = going.get(session)
            if current is None and session.in_flight:
                current = session.writer
            target = self._write_side_for(p, ready, current)
            if current is not None and target is not current:
                held.add(session)
                waiting.append(p)
                continue
            going[session] = target
            shares.setdefault(target.identity, (target, []))[1].append(p)
        # Set before sending: a failed send puts its commands back into this outbox.
        self.command_outbox = waiting
        for member, share in shares.values():
            self._send(self.write, member, wire.COMMANDS, share)

    def _write_side_for(self, pending: Pending, ready: list[Member],
                        current: Member | None) -> Member:
        """The write side the session's unanswered commands are on, while it is ready;
        else the write side of the command's stream; for a command with no stream the
        router can name (its id is made by the write side), the next in turn."""
        if len(ready) == 1:
            return ready[0]
        if current is not None and any(m is current for m in ready):
            return current
        stream = command_stream(pending.parsed.args)
        if stream is not None:
            return owner(stream, ready)
        return ready[self.write.next_turn(len(ready))]

    def _back(self, pending: Pending) -> None:
        """A command is no longer on a write side: its result came, or that write side
        was lost. Its session may then send commands to another write side."""
        if pending.on is not None:
            pending.on = None
            pending.session.in_flight -= 1

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
        outbox = self.command_outbox if kind == wire.COMMANDS else self.query_outbox
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
                p.sent = True
            if kind == wire.COMMANDS:
                for p in chunk:
                    p.on = member
                    p.session.writer = member
                    p.session.in_flight += 1

    def _pack(self, items: list[Pending]) -> tuple[list[Pending], bytes]:
        """Pack a batch; answer at once any request the wire cannot carry (e.g. an integer
        over 64 bits) and pack the rest."""
        try:
            return items, wire.pack([p.request() for p in items])
        except wire.PACK_ERRORS:
            good = []
            for p in items:
                try:
                    wire.pack(p.request())
                    good.append(p)
                except wire.PACK_ERRORS:
                    self._fail(p, MALFORMED, errors.OUT_OF_RANGE)
            return good, wire.pack([p.request() for p in good])

    def _fail(self, pending: Pending, code: int, detail: str) -> None:
        self._answer(pending, errors.reply(pending.parsed.msg_id, code,
                                           errors.text(code, detail)))

    def expire(self, now: float) -> None:
        queue = self.by_deadline
        while queue and (queue[0].answered or queue[0].deadline <= now):
            pending = queue.popleft()
            if pending.answered:
                continue
            role = "write" if pending.parsed.kind == "command" else "read"
            if pending.sent:  # a back-end took it: it may have run
                self._fail(pending, TIMEOUT, f"no answer within {self.cfg.timeout:g} s; "
                                             "the outcome is unknown")
            else:
                self._fail(pending, UNAVAILABLE, f"no {role} side took it within "
                                                 f"{self.cfg.timeout:g} s; it did not run")

    def abort(self, reason: str) -> None:
        """Stop taking input and answer everything waiting: the node cannot run. Error 11 for
        what no back-end took; 0 for what one did, since it may have run before it stopped."""
        log.error("stopping: %s", reason)
        self.draining = True
        for pending in list(self.pending.values()):
            if pending.sent:
                self._fail(pending, TIMEOUT, f"the outcome is unknown: {reason}")
            else:
                self._fail(pending, UNAVAILABLE, reason)

    def drop_members(self, members: list[Member]) -> None:
        """Hand a lost back-end's unanswered requests back to the outboxes, in input order."""
        for member in members:
            log.warning("%s side pid %s lost; re-sending %d requests", member.role, member.pid,
                        len(member.inflight))
            box = self.command_outbox if member.role == "write" else self.query_outbox
            box.extend(member.inflight.values())
            box.sort(key=lambda p: p.seq)
            if member.role == "write":
                for pending in member.inflight.values():
                    self._back(pending)
            member.inflight.clear()

    # ---- stats ---------------------------------------------------------------------------

    def stats(self, replies_on_their_way: int = 0) -> dict:
        """The node's figures now; `replies_on_their_way` were taken for output but not yet
        counted in self.replies."""
        head = self.head or 0
        processes = [{"role": m.role, "pid": m.pid, "ready": m.ready, "position": m.position,
                      "lag": max(0, head - m.position), "counters": m.counters}
                     for pool in (self.write, self.read) for m in pool.members.values()]
        router = {"role": "router", "pid": os.getpid(), "requests": self.seq,
                  "replies": self.replies + replies_on_their_way,
                  "pending": len(self.pending), "head": head,
                  "dropped_messages": self.drops.count, **self.requests.as_dict(),
                  **self.extra_stats()}
        if self.clients is not None:
            router.update(clients=len(self.clients.sessions),
                          undeliverable=self.clients.undeliverable,
                          replies_waiting=sum(map(len, self.clients.backlogs.values())),
                          requests_parked=self.clients.parked_count)
        return {"router": router, "processes": processes}

    # ---- the loop -------------------------------------------------------------------------

    def done(self) -> bool:
        """Stdin mode ends at end of input, service mode on a signal; both once all is answered."""
        ending = self.draining or (self.stdin is not None and self.stdin.eof)
        return (ending and not self.pending and not self.stats_waiting
                and not any(s.busy() for s in self._sessions())
                and not (self.stdin is not None and self.stdin.blocked))

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
        reading = serving = writing = False
        last_sweep = 0.0
        while not self.done():
            reading = self._watch_stdin(poller, reading)
            serving = self._watch_clients(poller, serving)
            if self.stdin is not None:  # stdout: watched only while replies wait for room
                writing = _watch(poller, self.stdin.out_fd, writing, self.stdin.blocked,
                                 zmq.POLLOUT)
            events = dict(poller.poll(self._poll_timeout()))
            now = time.monotonic()
            if writing and events.get(self.stdin.out_fd):
                self.stdin.write_out()
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
            if self.clients is not None and self.clients.backlogs:
                self.clients.flush_backlogs()

    def _watch_stdin(self, poller: zmq.Poller, reading: bool) -> bool:
        """Read stdin only while it is open, we are not draining, and the backlog is small."""
        if self.stdin is None:
            return False
        want = (not (self.stdin.eof or self.draining)
                and len(self.pending) + self.stdin.unwritten < MAX_PENDING)
        return _watch(poller, self.stdin.in_fd, reading, want)

    def _watch_clients(self, poller: zmq.Poller, serving: bool) -> bool:
        """Take client requests while not draining and the backlog is small; meanwhile
        they wait in ZeroMQ's queues, whose high-water marks push back on the clients."""
        if self.clients is None:
            return False
        want = (not self.draining and len(self.pending) < MAX_PENDING
                and self.clients.readable)
        if want and self.clients.parked:
            for session, parsed in self.clients.read():  # parked requests whose turn came
                self.accept(session, parsed, time.monotonic())
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
        if self.clients is not None and self.clients.waiting():
            return 10  # a client's backlog or parked requests: try again soon
        if self.by_deadline:
            left = self.by_deadline[0].deadline - time.monotonic()
            return max(1, min(100, int(left * 1000) + 1))
        return 100

    def close(self) -> None:
        self.write.close()
        self.read.close()
        if self.clients:
            self.clients.close()


def command_stream(args: Any) -> str | None:
    """The stream a command is for, as far as the router can tell: its payload's `id`, when
    that is a non-empty string. The contexts' write sides name their streams the same way
    (write_side.validation.payload_stream_ids, which the router must not import). A
    command without one has no stream yet: the write side makes its id (bus CreateUser).
    Only where a command goes depends on this, never what it does."""
    stream_id = args.get("id") if isinstance(args, dict) else None
    return stream_id if isinstance(stream_id, str) and stream_id else None


def _watch(poller: zmq.Poller, source, watching: bool, want: bool,
           flags: int = zmq.POLLIN) -> bool:
    """(Un)register a source so the poller reflects `want`; returns `want`."""
    if want and not watching:
        poller.register(source, flags)
    elif watching and not want:
        poller.unregister(source)
    return want
