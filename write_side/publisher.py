"""Publishes stored events on the PUB socket, and a heartbeat with the head when idle."""
from __future__ import annotations

import os
import time

import zmq

from common import wire
from write_side.store import Stored

HEARTBEAT_EVERY = 0.5  # seconds of silence before a heartbeat; PROTOCOL.md asks at least 1/s


class Publisher:
    def __init__(self, ctx: zmq.Context, endpoint: str, secure=None, hwm: int = 20_000) -> None:
        self.socket = ctx.socket(zmq.PUB)
        # Set on purpose: a subscriber more than `hwm` events behind loses the excess and
        # catches up from the store; the queue stays a few MB per subscriber.
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        self.socket.setsockopt(zmq.LINGER, 1000)
        if secure is not None:
            secure.server(self.socket, "events")
        self.socket.bind(endpoint)
        self.head = 0
        self.published = 0
        self._last_sent = 0.0
        # Test-only fault injection: skip every Nth publish (0 = never).
        self._drop_every = int(os.environ.get("CQRS_FAULT_DROP_EVERY", "0") or 0)
        self.dropped_on_purpose = 0

    def publish(self, stored: list[Stored]) -> None:
        # Two plain sends cost a third of one send_multipart in pyzmq, per event.
        send, more = self.socket.send, zmq.SNDMORE
        for item in stored:
            event = item.event
            self.head = event["position"]
            self.published += 1
            if self._drop_every and self.published % self._drop_every == 0:
                self.dropped_on_purpose += 1
                continue
            send(f"{event['context']}.{event['type']}".encode(), more)
            send(item.body)
        if stored:
            self._last_sent = time.monotonic()

    def heartbeat_due(self, now: float) -> bool:
        return now - self._last_sent >= HEARTBEAT_EVERY

    def heartbeat(self, now: float) -> None:
        self.socket.send_multipart([wire.HEARTBEAT_TOPIC, wire.pack({"head": self.head})])
        self._last_sent = now

    def close(self) -> None:
        self.socket.close()
