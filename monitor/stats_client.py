"""Asks the router for `stats` once a second, as a client of its client endpoint.

In service mode that is the router's public client endpoint; under run_node.py the
launcher binds one for the monitor in the private runtime folder. One request is out at a
time. A router that does not answer within ANSWER_WITHIN (it restarted, or is gone) gets a
fresh socket and a new request: the old socket's queue is dropped with it, so requests to
a dead router never pile up, and ZeroMQ reconnects the new one whenever the router is back.
"""
from __future__ import annotations

import json
import logging

import zmq

log = logging.getLogger("monitor")
EVERY = 1.0  # seconds between two requests
ANSWER_WITHIN = 3.0


class StatsClient:
    def __init__(self, ctx: zmq.Context, endpoint: str, secure=None) -> None:
        self.ctx, self.endpoint, self.secure = ctx, endpoint, secure
        self.msg_id = 0
        self.sent_at: float | None = None  # the request out, if any
        self.next_at = 0.0
        self.answering = True  # as far as we know: so an outage is logged once, not each try
        self.socket = self._new_socket()

    def _new_socket(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.secure is not None:
            self.secure.client(sock)
        sock.connect(self.endpoint)
        return sock

    def ask_if_due(self, now: float) -> None:
        if self.sent_at is not None:
            if now - self.sent_at < ANSWER_WITHIN:
                return
            if self.answering:
                log.warning("the router at %s does not answer stats; asking again every "
                            "%.0f s", self.endpoint, ANSWER_WITHIN)
            self.answering = False
            self.socket.close()
            self.socket = self._new_socket()
        elif now < self.next_at:
            return
        self.msg_id += 1
        try:
            self.socket.send(json.dumps({"type": "stats", "msg_id": self.msg_id}).encode(),
                             zmq.NOBLOCK)
        except zmq.Again:  # not connected yet: ZeroMQ queues nothing for a DEALER then
            pass
        self.sent_at = now

    def receive(self, now: float) -> dict | None:
        """The data of the awaited stats reply if it came, else None (anything else that
        arrives, e.g. a late answer to an abandoned request, is skipped)."""
        data = None
        while True:
            try:
                frame = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return data
            try:
                reply = json.loads(frame)
                body = reply.get("body", reply)  # a node run with --envelope wraps replies
                if (body.get("type") == "stats_result" and body.get("in_reply_to") == self.msg_id
                        and isinstance(body.get("data"), dict)):
                    data = body["data"]
                    if not self.answering:
                        log.info("the router answers stats again")
                    self.answering = True
                    self.sent_at, self.next_at = None, now + EVERY
            except (ValueError, AttributeError):
                continue

    def close(self) -> None:
        self.socket.close()
