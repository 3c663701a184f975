"""A Subscription following two publishers over real ZeroMQ sockets, in this process: events
sent out of order by two fake write sides come out applied in position order, once each;
what neither sends is read from the catch-up source once the hold runs out.

The publishers are XPUB sockets, so a test knows the subscription has reached each of them
(an XPUB receives the subscriber's subscriptions) before it publishes: nothing is lost to
PUB/SUB's late joining, and nothing waits a fixed time."""
from __future__ import annotations

import itertools
import time
from typing import Iterator

import pytest
import zmq

from common import wire
from common.catchup_sources import Page
from common.subscription import Subscription

WAIT = 10.0  # seconds at most for anything that should happen at once


def event(position: int) -> dict:
    return {"position": position, "context": "accounts", "stream_id": f"s{position % 4}",
            "version": position, "type": "UserCreated", "data": {"n": position},
            "recorded_at": "2024-01-01T00:00:00.000000Z", "event_id": f"e{position}"}


class MemorySource:
    """A store in a list behind the CatchupSource interface, answering at once; it records
    what it was asked (`after` of each request)."""
    where = "a list"

    def __init__(self, head: int, chunk: int = 4) -> None:
        self.events = [event(p) for p in range(1, head + 1)]
        self.chunk = chunk
        self.asked: list[int] = []
        self._answers: dict[int, Page] = {}
        self._tickets = itertools.count(1)
        self.closed = False

    def ask(self, after: int, limit: int | None = None) -> int:
        self.asked.append(after)
        ticket = next(self._tickets)
        count = min(limit or self.chunk, self.chunk)
        self._answers[ticket] = Page(len(self.events), self.events[after:after + count])
        return ticket

    def wait(self, ticket: int, timeout: float) -> Page | None:
        return self._answers.pop(ticket, None)

    def close(self) -> None:
        self.closed = True


class Publisher:
    """A fake write side's PUB: sends events and heartbeats as write_side/publisher.py does."""

    def __init__(self, ctx: zmq.Context, name: str) -> None:
        self.endpoint = f"inproc://{name}"
        self.socket = ctx.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(self.endpoint)

    def wait_for_subscriber(self) -> None:
        """Until the subscription's subscribe-to-everything message has arrived."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.socket.poll(100) and self.socket.recv() == b"\x01":
                return
        pytest.fail(f"no subscriber reached {self.endpoint}")

    def send(self, *positions: int) -> None:
        for p in positions:
            e = event(p)
            self.socket.send_multipart([f"{e['context']}.{e['type']}".encode(), wire.pack(e)])

    def beat(self, head: int) -> None:
        self.socket.send_multipart(wire.heartbeat(head, ""))


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


class Follower:
    """A Subscription to publishers a and b, and what it applied."""

    def __init__(self, ctx: zmq.Context, source: MemorySource, writers: int = 2,
                 hold_for: float | None = None) -> None:
        self.publishers = [Publisher(ctx, name) for name in "ab"[:writers]]
        self.applied: list[int] = []
        self.source = source
        self.sub = Subscription(ctx, ",".join(p.endpoint for p in self.publishers), source,
                                lambda e: self.applied.append(e["position"]),
                                hold_for=hold_for)
        for publisher in self.publishers:
            publisher.wait_for_subscriber()

    @property
    def a(self) -> Publisher:
        return self.publishers[0]

    @property
    def b(self) -> Publisher:
        return self.publishers[1]

    def take(self, events: int) -> None:
        """Drain until `events` more live events were read."""
        wanted = self.sub.counters["received"] + events
        deadline = time.monotonic() + WAIT
        while self.sub.counters["received"] < wanted:
            assert time.monotonic() < deadline, "the events sent did not arrive"
            if self.sub.socket.poll(100):
                self.sub.drain()

    def run_until(self, done, timeout: float = WAIT) -> None:
        """The loop a read side runs: poll no longer than the gap's hold, then heal."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not done; applied {self.applied}"
            due = self.sub.due_in()
            if self.sub.socket.poll(100 if due is None else int(due * 1000) + 1):
                self.sub.drain()
            self.sub.heal_if_due()


def test_events_of_two_writers_out_of_order_are_applied_in_order(ctx):
    # A long hold: however slow this host, the gaps are filled by the streams alone.
    f = Follower(ctx, MemorySource(head=6), hold_for=60.0)
    f.a.send(2)
    f.take(1)
    assert f.applied == []  # 2 waits for 1
    f.b.send(1)
    f.take(1)
    assert f.applied == [1, 2]
    f.b.send(4, 5)
    f.take(2)
    f.a.send(3, 6)
    f.take(2)
    assert f.applied == [1, 2, 3, 4, 5, 6]
    assert f.sub.counters["catchups"] == 0 and f.source.asked == []  # the streams sufficed
    assert f.sub.counters["held"] == 3 and f.sub.due_in() is None


def test_an_event_both_writers_send_is_applied_once(ctx):
    f = Follower(ctx, MemorySource(head=2))
    f.a.send(1, 2)
    f.b.send(1, 2)
    f.take(4)
    assert f.applied == [1, 2] and f.sub.counters["duplicates"] == 2


def test_a_position_neither_writer_sends_is_read_from_the_source_after_the_hold(ctx):
    hold = 0.5  # long enough that the events below all arrive within it on a slow host
    f = Follower(ctx, MemorySource(head=5), hold_for=hold)
    started = time.monotonic()
    f.a.send(1, 3)
    f.b.send(5)
    f.take(3)
    assert f.applied == [1]
    f.run_until(lambda: f.applied == [1, 2, 3, 4, 5])
    # The gap opened after `started` and was read only once the hold had run out.
    assert time.monotonic() - started >= hold
    assert f.source.asked == [1]
    assert f.sub.counters["gaps"] == 1 and f.sub.counters["caught_up_events"] == 2


def test_a_heartbeat_ahead_reveals_a_lost_tail_and_the_highest_head_counts(ctx):
    f = Follower(ctx, MemorySource(head=7))
    f.a.send(1, 2)
    f.b.beat(7)
    f.a.beat(2)  # a writer that published less: its head is lower
    f.take(2)
    f.run_until(lambda: f.applied == list(range(1, 8)))
    assert f.sub.counters["gaps"] == 0  # no event showed it: only the head did


def test_a_catch_up_replays_in_chunks_and_asks_for_the_next_before_applying(ctx):
    source = MemorySource(head=10, chunk=4)
    f = Follower(ctx, source)
    assert f.sub.catch_up()
    assert f.applied == list(range(1, 11))
    assert source.asked == [0, 4, 8]


def test_with_one_writer_a_gap_is_filled_at_once(ctx):
    """One write side publishes in order: no hold, as before there could be several."""
    f = Follower(ctx, MemorySource(head=3), writers=1)
    f.a.send(1, 3)
    f.take(2)  # drain fills the gap on the way
    assert f.applied == [1, 2, 3] and f.sub.counters["gaps"] == 1


def test_event_at_and_head_only_ask_the_source(ctx):
    f = Follower(ctx, MemorySource(head=5))
    assert f.sub.event_at(3) == (True, event(3))
    assert f.sub.event_at(9) == (True, None)
    assert f.sub.head_only() == 5
    f.sub.close()
    assert f.source.closed  # the subscription owns its source
