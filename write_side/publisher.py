"""Publishes stored events on the PUB socket, and a heartbeat with the head when idle."""
from __future__ import annotations


import zmq

from common import config, wire
from write_side.store import Stored

# Seconds between heartbeats, busy or not: a subscriber learns the head and the catch-up
# endpoint from them, and one that joins a stream that never pauses must learn them too.
HEARTBEAT_EVERY = 0.5


class Publisher:
    def __init__(self, ctx: zmq.Context, endpoint: str, catchup_endpoint: str, secure=None,
                 hwm: int = 20_000) -> None:
        self.socket = ctx.socket(zmq.PUB)
        # Set on purpose: a subscriber more than `hwm` events behind loses the excess and
        # catches up from the store; the queue stays a few MB per subscriber.
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        self.socket.setsockopt(zmq.LINGER, 1000)
        if secure is not None:
            secure.server(self.socket, "events")
        self.socket.bind(endpoint)
        self.head = 0
        self.catchup_endpoint = catchup_endpoint  # announced in every heartbeat
        self.published = 0
        self._last_beat = 0.0
        # Test-only fault injection: skip every Nth publish (0 = never).
        self._drop_every = config.value("fault_drop_every")
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

    def heartbeat_due(self, now: float) -> bool:
        return now - self._last_beat >= HEARTBEAT_EVERY

    def heartbeat(self, now: float) -> None:
        self.socket.send_multipart(wire.heartbeat(self.head, self.catchup_endpoint))
        self._last_beat = now

    def close(self) -> None:
        self.socket.close()
