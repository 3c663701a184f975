"""The router with several write sides: commands spread by stream, each session's commands
in its input order, failover, hello handling, and the head. The write sides are DEALER
sockets in this process, on inproc endpoints, so the router's real loop code runs on real
messages without starting a process."""
from __future__ import annotations

import itertools
import json
import time
from typing import Any, Callable

import pytest
import zmq

from common import wire
from common.config import Config
from router.backends import owner
from router.loop import Router
from router.parse import parse
from router.session import Session
from tests.support import bus, envelope

_endpoints = itertools.count()


class WriteSide:
    """A write side as the router sees it: hello, status, and results for what it takes."""

    def __init__(self, ctx: zmq.Context, endpoint: str, pid: int, exclusive: bool = False):
        self.pid, self.exclusive = pid, exclusive
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.taken: list[wire.CommandRequest] = []

    def report(self, kind: bytes, position: int = 0) -> None:
        record = wire.Report("write", self.pid, True, position, {}, self.exclusive)
        self.sock.send_multipart(wire.message(kind, record))

    def take(self) -> list[wire.CommandRequest]:
        """Every command the router sent since the last take."""
        got = []
        while self.sock.poll(0):
            kind, body = self.sock.recv_multipart()
            assert kind == wire.COMMANDS
            got += wire.command_requests(body)
        self.taken += got
        return got

    def answer(self, requests: list[wire.CommandRequest], position: int) -> None:
        results = [wire.CommandResult(r.seq, {"success": True, "events": [r.command_id]},
                                      position + i) for i, r in enumerate(requests)]
        self.sock.send_multipart(wire.message(wire.RESULTS, results))


class Harness:
    def __init__(self) -> None:
        self.ctx = zmq.Context()
        n = next(_endpoints)
        self.cfg = Config(write_endpoint=f"inproc://write-{n}", read_endpoint=f"inproc://read-{n}",
                          timeout=30.0)
        self.router = Router(self.cfg, self.ctx)
        self.sides: list[WriteSide] = []
        self.replies: dict[str, list[dict]] = {}
        self.sessions: dict[str, Session] = {}

    def side(self, pid: int, exclusive: bool = False, position: int = 0) -> WriteSide:
        side = WriteSide(self.ctx, self.cfg.write_endpoint, pid, exclusive)
        side.report(wire.HELLO, position)
        self.sides.append(side)
        self.pump(lambda: any(m.pid == pid for m in self.router.write.members.values()))
        return side

    def session(self, name: str) -> Session:
        if name not in self.sessions:
            out = self.replies.setdefault(name, [])
            self.sessions[name] = Session(name, lambda lines: out.extend(
                json.loads(line) for line in lines))
        return self.sessions[name]

    def send(self, name: str, *bodies: dict) -> None:
        for body in bodies:
            self.router.accept(self.session(name), parse(json.dumps(body).encode(), 1 << 20),
                               time.monotonic())
        self.pump(lambda: True)

    def pump(self, until: Callable[[], Any], timeout: float = 5.0) -> None:
        """Run the router's steps (as its loop does) until `until()` holds."""
        deadline = time.monotonic() + timeout
        while True:
            if self.router.write.socket.poll(5):
                self.router.on_write_messages()
            self.router.release_queries()
            self.router.dispatch()
            self.router.flush()
            if until():
                return
            assert time.monotonic() < deadline, "the router did not get there in time"

    def taken(self, side: WriteSide, count: int) -> list[wire.CommandRequest]:
        """Wait until `side` has been sent `count` commands since the last call."""
        got = self.collect([side], count)[side.pid]
        assert len(got) == count, [r.args for r in got]
        return got

    def collect(self, sides: list[WriteSide], total: int) -> dict[int, list[wire.CommandRequest]]:
        """Wait until `total` commands have reached these sides; what each got, by pid."""
        got: dict[int, list[wire.CommandRequest]] = {side.pid: [] for side in sides}

        def all_in() -> bool:
            for side in sides:
                got[side.pid] += side.take()
            return sum(map(len, got.values())) >= total

        self.pump(all_in)
        return got

    def nothing_sent(self, *sides: WriteSide) -> bool:
        """After a round of the router's steps, none of these sides got a command. (What the
        router sent is in the inproc pipe once its send returns: the short poll is a margin,
        not a wait for something expected.)"""
        self.pump(lambda: True)
        return not any(s.sock.poll(20) for s in sides)

    def close(self) -> None:
        for side in self.sides:
            side.sock.close()
        self.router.close()
        self.ctx.term()


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    yield harness
    harness.close()


def streams_owned(h: Harness, count: int, where: list[WriteSide]) -> list[str]:
    """Stream ids whose owner among the router's ready write sides is, in turn, each side
    in `where` (so a test can aim commands at a write side)."""
    ready = h.router.write.ready()
    by_pid = {m.pid: m for m in ready}
    found, ids = [], (f"s{i}" for i in itertools.count())
    for side in where * count:
        found.append(next(s for s in ids if owner(s, ready) is by_pid[side.pid]))
    return found


def test_commands_go_to_the_write_side_of_their_stream(h):
    a, b, c = h.side(101), h.side(102), h.side(103)
    ids = [f"u{i}" for i in range(120)]
    for i, uid in enumerate(ids):  # a session each: nothing waits for anything
        h.send(f"client-{i}", envelope.create(uid, "N", msg_id=i))
    ready = h.router.write.ready()
    got = {pid: [r.args["id"] for r in taken]
           for pid, taken in h.collect([a, b, c], len(ids)).items()}
    for pid, streams in got.items():
        assert streams and all(owner(s, ready).pid == pid for s in streams), pid
    assert sorted(sum(got.values(), [])) == sorted(ids)


def test_a_session_s_commands_stay_on_one_write_side_while_any_is_unanswered(h):
    """A pipelining session pays no round trip per change of stream: while it has a command
    on a write side, its next ones go there too, in input order; with none unanswered,
    its next command goes to its stream's write side again."""
    a, b = h.side(101), h.side(102)
    on_a1, on_b, on_a2 = streams_owned(h, 1, [a, b, a])
    h.send("one", envelope.create(on_a1, "A", msg_id=1), envelope.create(on_b, "B", msg_id=2),
           envelope.create(on_a2, "C", msg_id=3))
    taken = h.taken(a, 3)
    assert [r.args["id"] for r in taken] == [on_a1, on_b, on_a2]
    assert h.nothing_sent(b), "a command left its session's write side"
    a.answer(taken, 10)
    h.pump(lambda: len(h.replies["one"]) == 3)
    assert [r["in_reply_to"] for r in h.replies["one"]] == [1, 2, 3]
    h.send("one", envelope.rename(on_b, "D", msg_id=4))  # nothing unanswered: its owner
    assert h.taken(b, 1)[0].args["id"] == on_b


def test_commands_for_one_write_side_go_together_and_other_sessions_do_not_wait(h):
    a, b = h.side(101), h.side(102)
    on_a = streams_owned(h, 3, [a])
    on_b = streams_owned(h, 1, [b])
    h.send("one", *[envelope.create(s, "N", msg_id=i) for i, s in enumerate(on_a)])
    h.send("two", envelope.create(on_b[0], "N", msg_id=9))
    assert [r.args["id"] for r in h.taken(a, 3)] == on_a  # together, in input order
    assert [r.args["id"] for r in h.taken(b, 1)] == on_b  # another session: no wait


def test_commands_with_no_stream_go_where_their_session_is_else_in_turn(h):
    a, b = h.side(101), h.side(102)
    on_b = streams_owned(h, 1, [b])[0]
    h.send("one", envelope.create(on_b, "N", msg_id=1),
           *[bus.create(f"N{i}", f"n{i}@example.com", msg_id=2 + i) for i in range(5)])
    assert len(h.taken(b, 6)) == 6  # the creates follow the session, rather than wait
    for i in range(40):  # sessions with nothing on a write side: in turn over both
        h.send(f"c{i}", bus.create(f"M{i}", f"m{i}@example.com", msg_id=i))
    got = h.collect([a, b], 40)
    assert [len(got[a.pid]), len(got[b.pid])] == [20, 20]


@pytest.mark.parametrize("how", ["exited", "silent"])
def test_a_lost_write_side_s_commands_go_to_the_others_at_once_in_order(h, how):
    a, b, c = h.side(101), h.side(102), h.side(103)
    on_a = streams_owned(h, 4, [a])
    h.send("one", *[envelope.create(s, "N", msg_id=i) for i, s in enumerate(on_a)])
    h.send("one", envelope.rename(on_a[0], "M", msg_id=4))
    assert len(h.taken(a, 5)) == 5
    if how == "exited":
        h.router.on_tick = lambda: [a.pid]  # the supervisor saw it exit
        h.router._sweep(time.monotonic())
        h.router.on_tick = lambda: []
    else:  # it said nothing for longer than the router waits; the others spoke lately
        next(m for m in h.router.write.members.values() if m.pid == a.pid).last_seen -= 60
        h.router._sweep(time.monotonic())
    assert all(m.pid != a.pid for m in h.router.write.members.values())
    survivors = h.router.write.ready()
    assert {m.pid for m in survivors} == {b.pid, c.pid}
    # Handed to the write sides left at once, in input order: all to the new owner of the
    # first one's stream, since the session's commands stay on one write side together.
    seen: list[tuple[int, str, str]] = []
    position = 100
    heir = owner(on_a[0], survivors).pid
    while len(seen) < 5:
        h.pump(lambda: b.sock.poll(0) or c.sock.poll(0))
        for side in (b, c):
            got = side.take()
            assert not got or side.pid == heir, (side.pid, heir)
            seen += [(r.seq, r.args["id"], r.name) for r in got]
            if got:
                side.answer(got, position)
                position += len(got)
    assert [s[1:] for s in seen] == [(s, "CreateUser") for s in on_a] + [(on_a[0], "RenameUser")]
    a.answer(a.taken, 50)  # too late: its results are not taken, nothing is answered twice
    h.pump(lambda: len(h.replies["one"]) == 5 and not h.router.write.socket.poll(0))
    assert [r["in_reply_to"] for r in h.replies["one"]] == [0, 1, 2, 3, 4]
    assert all(r["success"] for r in h.replies["one"])


def test_a_hello_on_a_shared_store_leaves_the_others_in_place(h):
    a = h.side(101)
    on_a = streams_owned(h, 1, [a])
    h.send("one", envelope.create(on_a[0], "N", msg_id=1))
    h.taken(a, 1)
    h.side(102)  # a new process on the same shared store: one more write side
    assert {m.pid for m in h.router.write.members.values()} == {101, 102}
    assert len(h.router.write.members[next(iter(h.router.write.members))].inflight) == 1


def test_a_hello_on_a_store_with_one_writer_replaces_the_old_write_side(h):
    old = h.side(101, exclusive=True)
    h.send("one", envelope.create("u1", "N", msg_id=1), envelope.create("u2", "N", msg_id=2))
    unanswered = h.taken(old, 2)
    new = h.side(102, exclusive=True)  # the old one is gone: its restart says hello
    assert [m.pid for m in h.router.write.members.values()] == [102]
    again = h.taken(new, 2)
    assert [r.command_id for r in again] == [r.command_id for r in unanswered]  # same ids
    new.answer(again, 5)
    h.pump(lambda: len(h.replies["one"]) == 2)


def test_a_write_side_on_a_store_with_one_writer_is_not_taken_beside_another(h):
    """A second write side on a one-writer store (a store in memory, say, which no lock
    guards), met through its status, does not join: commands split between two stores
    would be lost to the other's readers."""
    h.side(101, exclusive=True)
    stranger = WriteSide(h.ctx, h.cfg.write_endpoint, 202, exclusive=True)
    h.sides.append(stranger)
    stranger.report(wire.STATUS)
    h.pump(lambda: not h.router.write.socket.poll(0))
    assert [m.pid for m in h.router.write.members.values()] == [101]


def test_the_head_is_the_highest_position_any_write_side_reported(h):
    a, b = h.side(101, position=7), h.side(102, position=4)
    assert h.router.head == 7
    b.report(wire.STATUS, 12)
    a.report(wire.STATUS, 9)
    h.pump(lambda: h.router.head == 12)
    on_a = streams_owned(h, 1, [a])
    h.send("one", envelope.create(on_a[0], "N", msg_id=1))
    a.answer(h.taken(a, 1), 15)
    h.pump(lambda: h.router.head == 15)


def test_a_query_waits_for_the_session_s_commands_on_every_write_side(h):
    a, b = h.side(101), h.side(102)
    on_a, on_b = streams_owned(h, 1, [a, b])
    h.send("one", envelope.create(on_a, "A", msg_id=1))
    a.answer(h.taken(a, 1), 20)
    h.pump(lambda: len(h.replies["one"]) == 1)
    # Its next command goes to the other write side (nothing of the session is on a now).
    h.send("one", envelope.create(on_b, "B", msg_id=2), envelope.get_user(on_a, msg_id=3))
    first = h.taken(b, 1)
    assert not h.router.query_outbox  # still waiting for the command on b
    b.answer(first, 8)  # a lower position: another write side's commit came earlier
    h.pump(lambda: h.router.query_outbox)
    assert h.router.query_outbox[0].at == 20  # the highest of its commands' positions
