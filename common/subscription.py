"""A gap-free subscription to the event stream of one or more write sides (ZeroMQ guide's
Clone pattern).

One SUB socket is connected to every write side's PUB endpoint; a catch-up source
(common.catchup_sources) replays what the live stream did not bring: the write side's
catch-up endpoint, or the database itself on a store every process reads (PostgreSQL).

Events are applied strictly in position order, each once (`Sequencer`). PUB/SUB may drop
messages, and the streams of several write sides interleave: an event from one write side
may arrive before the event just below it from another (a slow writer's position arrives
after a faster one's). So an event ahead of the next position is held, a heartbeat whose
head is ahead reveals a missing tail, and a gap that does not fill from the live streams
within HOLD_FOR seconds is filled from the catch-up source. A position is never skipped:
the store holds every position below any that was published. Every case is counted.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import zmq

from common import config, wire
from common.catchup_sources import CatchupSource, EndpointSource

log = logging.getLogger("subscription")

# Seconds a gap may wait for the live streams of several write sides to fill it before it
# is read from the store. Write sides publish right after their commit, so the event a
# gap waits for is normally a few milliseconds late; this covers a writer descheduled for
# a while on a busy host, and a gap still open after it costs one catch-up. A single write
# side publishes in position order, so there a gap means a lost message: no wait at all.
HOLD_FOR = 0.05
# Events held ahead of a gap at most (unpacked, about ten megabytes). Past it, a further
# event ahead is not kept (the store has it) and the gap is filled at once.
MAX_HELD = 10_000
# Seconds after a catch-up that got no answer before a gap triggers another one, so a
# write side or database that is down is not asked again for every event that arrives.
RETRY_AFTER = 0.5
HEAD_ONLY = 1 << 62  # a position past any store's head: asking after it reads nothing


def new_counters() -> dict[str, int]:
    """The subscription's counters, reported in status (monitor/metrics.py names them).

    received          live events taken from the sockets (duplicates included)
    applied           events applied, live or replayed
    duplicates        live events dropped: applied already, or held already
    held              live events that arrived ahead of a gap and waited for it to fill
    held_dropped      live events ahead of a gap not kept, the buffer being full
    gaps              gaps in the live streams that had to be filled from the store
    catchups          catch-ups (reads of the store until its head)
    caught_up_events  events applied from the store"""
    return {"received": 0, "applied": 0, "duplicates": 0, "held": 0, "held_dropped": 0,
            "gaps": 0, "catchups": 0, "caught_up_events": 0}


class Sequencer:
    """Applies events in position order, each once, whatever order they arrive in.

    Pure: no socket, and the clock is the caller's (`clock`, read only while a gap is
    open), so the merging of several streams can be tested on its own. `position` is the
    last applied, `head` the highest known to exist; while position < head a gap is open,
    and `due` says when it should be filled from the store (the caller then replays with
    `replayed` and ends with `caught_up`)."""

    def __init__(self, apply: Callable[[dict], None], position: int = 0,
                 hold_for: float = HOLD_FOR, max_held: int = MAX_HELD,
                 counters: dict[str, int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.apply = apply
        self.position = position
        self.head = position
        self.hold_for = hold_for
        self.max_held = max_held
        self.counters = counters if counters is not None else new_counters()
        self.clock = clock
        self._held: dict[int, dict] = {}
        self._gap_since: float | None = None  # when the open gap was first seen
        self._retry_at = 0.0  # after a failed catch-up: none due before this
        self._full = False    # an event ahead was not kept: only a catch-up has it now

    @property
    def held(self) -> int:
        """Events held ahead of the open gap."""
        return len(self._held)

    def start_at(self, position: int) -> None:
        """Continue after `position` (a snapshot taken up, a tap starting at the head):
        what is held at or below it is dropped, and the head is where the caller says
        (or the last event held beyond it)."""
        self._held = {p: e for p, e in self._held.items() if p > position}
        self.position, self.head = position, max(self._held, default=position)
        self._full = False
        self._gap_since = None
        following = self._held.pop(position + 1, None)
        if following is not None:  # held events that now follow on: applied at once
            self._advance(following)
        self._track()

    def offer(self, event: dict) -> None:
        """A live event, from any publisher."""
        counters = self.counters
        counters["received"] += 1
        position = event["position"]
        if position == self.position + 1 and not self._held:
            # The common case, kept short: one publisher, in order.
            self.apply(event)
            self.position = position
            counters["applied"] += 1
            if position >= self.head:
                self.head = position
                self._gap_since = None
            return
        if position > self.head:
            self.head = position
        if position == self.position + 1:
            self._advance(event)
        elif position <= self.position or position in self._held:
            counters["duplicates"] += 1
        elif len(self._held) < self.max_held:
            self._held[position] = event
            counters["held"] += 1
        else:
            counters["held_dropped"] += 1
            self._full = True
        self._track()

    def heard_head(self, head: int) -> None:
        """A head announced by a publisher (its heartbeat) or by the store: every position
        up to it exists. Several publishers: the highest counts."""
        if head > self.head:
            self.head = head
            self._track()

    @property
    def gap(self) -> bool:
        return self.position < self.head

    def due(self) -> bool:
        """Whether the open gap should now be filled from the store."""
        if self._gap_since is None:
            return False
        now = self.clock()
        if now < self._retry_at:
            return False
        return (self._full or len(self._held) >= self.max_held
                or now - self._gap_since >= self.hold_for)

    def due_in(self) -> float | None:
        """Seconds until `due` (0 when it is), or None with no gap open."""
        if self._gap_since is None:
            return None
        now = self.clock()
        wait = self._retry_at - now
        if not (self._full or len(self._held) >= self.max_held):
            wait = max(wait, self._gap_since + self.hold_for - now)
        return max(0.0, wait)

    def healing(self) -> None:
        """A catch-up starts because the gap is due: counted as a gap when live events
        showed it (a lost tail that only a head revealed is not one)."""
        if self._held or self._full:
            self.counters["gaps"] += 1

    def replayed(self, event: dict) -> None:
        """An event read from the store: applied if it is the next one, else it was
        applied already (from the live streams meanwhile)."""
        position = event["position"]
        if position > self.head:
            self.head = position
        if position == self.position + 1:
            self._advance(event)
            self.counters["caught_up_events"] += 1

    def caught_up(self, answered: bool) -> None:
        """A catch-up ended: answered (read until the store's head) or not (then no new one
        is due for RETRY_AFTER seconds)."""
        self._held = {p: e for p, e in self._held.items() if p > self.position}
        if answered:
            self._full = False
        else:
            self._retry_at = self.clock() + RETRY_AFTER
        self._gap_since = None  # what is still open waits its hold again from here
        self._track()

    def _advance(self, event: dict) -> None:
        """Apply the next event, then the held ones that follow it without a gap."""
        self._apply(event)
        held = self._held
        if held:
            # Everything held is past the position (what is held at or below it goes as
            # the position reaches it: here, or in start_at and caught_up).
            following = held.pop(self.position + 1, None)
            while following is not None:
                self._apply(following)
                following = held.pop(self.position + 1, None)

    def _apply(self, event: dict) -> None:
        self.apply(event)
        self.position = event["position"]
        self.counters["applied"] += 1

    def _track(self) -> None:
        """Open the gap's clock when a gap appears, close it when it is filled."""
        if self.position >= self.head:
            self._gap_since = None
            self._full = False
        elif self._gap_since is None:
            self._gap_since = self.clock()


class Subscription:
    """Live events of every write side in `events_endpoints` (a list, or comma-separated),
    applied in position order through `apply`; what they miss is read from `source`.

    source: a CatchupSource, which the subscription then owns (closes), or the catch-up
    endpoint(s) of the write side(s), for an EndpointSource made here.
    hold_for: see HOLD_FOR; by default 0 with one events endpoint (in order by itself)."""

    def __init__(self, ctx: zmq.Context, events_endpoints: str | Sequence[str],
                 source: CatchupSource | str | Sequence[str], apply: Callable[[dict], None],
                 position: int = 0, topics: tuple[bytes, ...] = (b"",), hwm: int = 20_000,
                 secure=None, drops: wire.Drops | None = None,
                 hold_for: float | None = None, max_held: int = MAX_HELD) -> None:
        endpoints = (config.endpoint_list(events_endpoints)
                     if isinstance(events_endpoints, str) else list(events_endpoints))
        self.counters = new_counters()
        if hold_for is None:
            hold_for = HOLD_FOR if len(endpoints) > 1 else 0.0
        self._seq = Sequencer(apply, position, hold_for, max_held, self.counters)
        self.drops = drops if drops is not None else wire.Drops(log)
        if isinstance(source, (str, list, tuple)):
            source = EndpointSource(ctx, source, secure, self.drops)
        self.source: CatchupSource = source
        self.announced_catchup = ""  # the catch-up endpoint the last heartbeat named
        self.socket = ctx.socket(zmq.SUB)
        # Set on purpose: past `hwm` queued events the subscriber sees a gap and reads the
        # rest from the store in chunks, which is faster than a long queue and bounds memory.
        self.socket.setsockopt(zmq.RCVHWM, hwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        if secure is not None:
            secure.client(self.socket)
        for topic in topics + (wire.HEARTBEAT_TOPIC,):
            self.socket.setsockopt(zmq.SUBSCRIBE, topic)
        # One SUB socket takes every write side's stream: ZeroMQ queues them fairly.
        for endpoint in endpoints:
            self.socket.connect(endpoint)

    @property
    def position(self) -> int:
        """The last position applied."""
        return self._seq.position

    @property
    def head(self) -> int:
        """The highest position known to exist."""
        return self._seq.head

    def start_at(self, position: int) -> None:
        """Continue after `position`, applied already (a snapshot), or not wanted (a tap
        that prints only what comes from now on)."""
        self._seq.start_at(position)

    def drain(self) -> None:
        """Handle every live message already queued, without blocking; a gap that is due
        is filled from the store on the way."""
        # Every message on the event stream has exactly two frames (only the write side
        # publishes), and a message arrives whole: two plain receives are a fifth of the
        # cost of recv_multipart, per event.
        recv, nowait, seq = self.socket.recv, zmq.NOBLOCK, self._seq
        while True:
            try:
                topic = recv(nowait)
            except zmq.Again:
                return
            try:
                body = recv(nowait)
                if topic == wire.HEARTBEAT_TOPIC:
                    beat = wire.heartbeat_body(body)
                    self.announced_catchup = beat.catchup or self.announced_catchup
                    seq.heard_head(beat.head)
                else:
                    seq.offer(wire.event(wire.unpack(body)))
            except wire.BadFrame as bad:
                self.drops.drop("the event stream", "publisher", bad)
                self._skip_rest_of_message()
            except zmq.Again:  # a message arrives whole: it had only one frame
                self.drops.drop("the event stream", "publisher", "a message of one frame")
            if seq.position < seq.head and seq.due():
                self.heal()

    def _skip_rest_of_message(self) -> None:
        """After a malformed message, read on to its end so the next receive starts a message."""
        while self.socket.get(zmq.RCVMORE):
            self.socket.recv()

    def due_in(self) -> float | None:
        """Seconds until an open gap is to be filled from the store (heal_if_due), or None
        when there is none: a loop polls its sockets no longer than this."""
        return self._seq.due_in()

    def heal_if_due(self) -> None:
        """Fill an open gap from the store once it is due (the live streams did not)."""
        if self._seq.due():
            self.heal()

    def heal(self) -> bool:
        """Fill the open gap from the store now."""
        self._seq.healing()
        return self.catch_up()

    def catch_up(self, timeout: float = 2.0) -> bool:
        """Replay stored events until the store's head; False if the source did not answer
        in time.

        The next chunk is asked for before the current one is applied, so the source
        reads while this process applies."""
        self.counters["catchups"] += 1
        seq, source = self._seq, self.source
        ticket = source.ask(seq.position)
        while True:
            page = source.wait(ticket, timeout)
            if page is None:
                seq.caught_up(False)
                return False
            events = page.events
            seq.heard_head(page.head)
            done = not events or events[-1]["position"] >= page.head
            if not done:
                ticket = source.ask(max(events[-1]["position"], seq.position))
            for event in events:
                seq.replayed(event)
            if done:
                seq.caught_up(True)
                return True

    def event_at(self, position: int, timeout: float = 2.0) -> tuple[bool, dict | None]:
        """(answered, the stored event at `position` or None if the store has none)."""
        page = self.source.wait(self.source.ask(position - 1, limit=1), timeout)
        if page is None:
            return False, None
        events = page.events
        return True, (events[0] if events and events[0]["position"] == position else None)

    def head_only(self, timeout: float = 2.0) -> int | None:
        """The store's head, asked without replaying anything."""
        page = self.source.wait(self.source.ask(HEAD_ONLY, limit=1), timeout)
        return None if page is None else page.head

    def close(self) -> None:
        self.socket.close()
        self.source.close()
