"""A gap-free subscription to the event stream (ZeroMQ guide's Clone pattern).

PUB/SUB may drop messages, so live events are checked against the last
applied position: duplicates are dropped, a gap pauses live apply and
replays the missing range from the write side's catch-up socket, and a
heartbeat whose head is ahead reveals a lost tail. Every case is counted.
"""
from __future__ import annotations

import itertools
import logging
import time
from typing import Callable

import zmq

from common import wire

log = logging.getLogger("subscription")


class Subscription:
    def __init__(self, ctx: zmq.Context, events_endpoint: str, catchup_endpoint: str,
                 apply: Callable[[dict], None], position: int = 0,
                 topics: tuple[bytes, ...] = (b"",), hwm: int = 20_000, secure=None) -> None:
        self.apply = apply
        self.position = position  # last applied
        self.head = position      # highest position known to exist
        self.counters = {"received": 0, "applied": 0, "duplicates": 0, "gaps": 0,
                         "catchups": 0, "caught_up_events": 0}
        self._secure = secure
        self.socket = ctx.socket(zmq.SUB)
        # Set on purpose: past `hwm` queued events the subscriber sees a gap and reads the
        # rest from the store in chunks, which is faster than a long queue and bounds memory.
        self.socket.setsockopt(zmq.RCVHWM, hwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        if secure is not None:
            secure.client(self.socket)
        for topic in topics + (wire.HEARTBEAT_TOPIC,):
            self.socket.setsockopt(zmq.SUBSCRIBE, topic)
        self.socket.connect(events_endpoint)
        self._ctx = ctx
        self._catchup_endpoint = catchup_endpoint
        self._catchup = self._new_catchup_socket()
        self._req = itertools.count(1)

    def _new_catchup_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self._secure is not None:
            self._secure.client(sock)
        sock.connect(self._catchup_endpoint)
        return sock

    def drain(self) -> None:
        """Handle every live message already queued, without blocking."""
        # Every message on the event stream has exactly two frames (only the write side
        # publishes), and a message arrives whole: two plain receives are a fifth of the
        # cost of recv_multipart, per event.
        recv, nowait = self.socket.recv, zmq.NOBLOCK
        while True:
            try:
                topic = recv(nowait)
            except zmq.Again:
                return
            self._on_message(topic, wire.unpack(recv(nowait)))

    def _on_message(self, topic: bytes, body: dict) -> None:
        if topic == wire.HEARTBEAT_TOPIC:
            self.head = max(self.head, body["head"])
            if self.head > self.position:
                self.catch_up()
            return
        self.counters["received"] += 1
        position = body["position"]
        self.head = max(self.head, position)
        if position <= self.position:
            self.counters["duplicates"] += 1
        elif position == self.position + 1:
            self._apply(body)
        else:
            self.counters["gaps"] += 1
            self.catch_up()  # replays up to the head, this event included

    def _apply(self, event: dict) -> None:
        self.apply(event)
        self.position = event["position"]
        self.counters["applied"] += 1

    def catch_up(self, timeout: float = 2.0) -> bool:
        """Replay stored events until the write side's head; False if it did not answer in time.

        The next chunk is asked for before the current one is applied, so the write
        side reads while this process applies.
        """
        self.counters["catchups"] += 1
        req = self._send_request(self.position)
        while True:
            reply = self._wait_reply(req, timeout)
            if reply is None:
                return False
            events = reply["events"]
            self.head = max(self.head, reply["head"])
            done = not events or events[-1]["position"] >= reply["head"]
            if not done:
                req = self._send_request(events[-1]["position"])
            for event in events:
                if event["position"] == self.position + 1:
                    self._apply(event)
                    self.counters["caught_up_events"] += 1
            if done:
                return True

    def event_at(self, position: int, timeout: float = 2.0) -> tuple[bool, dict | None]:
        """(answered, the stored event at `position` or None if the store has none)."""
        req = self._send_request(position - 1, limit=1)
        reply = self._wait_reply(req, timeout)
        if reply is None:
            return False, None
        events = reply["events"]
        return True, (events[0] if events and events[0]["position"] == position else None)

    def head_only(self, timeout: float = 2.0) -> int | None:
        """The write side's head, asked without replaying anything."""
        req = self._send_request(1 << 62)
        reply = self._wait_reply(req, timeout)
        return None if reply is None else reply["head"]

    def _send_request(self, after: int, limit: int | None = None) -> int:
        req = next(self._req)
        request = {"after": after, "req": req}
        if limit is not None:
            request["limit"] = limit
        self._catchup.send(wire.pack(request))
        return req

    def _wait_reply(self, req: int, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self._catchup.poll(int(left * 1000) + 1):
                break
            reply = wire.unpack(self._catchup.recv())
            if reply.get("req") == req:  # older replies belong to abandoned requests
                return reply
        log.warning("catch-up got no answer within %.1f s; will retry", timeout)
        # A fresh socket drops the queued request, so a late answer cannot pile up.
        self._catchup.close()
        self._catchup = self._new_catchup_socket()
        return None

    def close(self) -> None:
        self.socket.close()
        self._catchup.close()
