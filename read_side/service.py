"""The read side's loop: apply events gap-free, answer queries once caught up to their position."""
from __future__ import annotations

import logging
import os
import time

import zmq

from common import wire
from common.config import Config
from common.jsontext import dumps
from common.log import setup
from common.security import Curve
from common.stopping import StopSignal
from common.subscription import Subscription
from common.tuning import collect_garbage_rarely
from read_side.contexts import load_all
from read_side.params import BadParams

STATUS_EVERY = 0.5
MAX_BATCH = 8192  # queries taken per round, so status keeps flowing under a flood
NUDGE_AFTER = 0.1  # a query waiting this long for its position triggers a catch-up


class ReadSide:
    def __init__(self, cfg: Config) -> None:
        self.log = setup("read")
        self.projections = load_all()
        self.ctx = wire.context()
        self.secure = Curve(self.ctx)
        self.sub = Subscription(self.ctx, cfg.events_endpoint, cfg.catchup_endpoint, self._apply,
                                secure=self.secure)
        self.router = self.ctx.socket(zmq.DEALER)
        self.router.setsockopt(zmq.LINGER, 1000)
        self.secure.client(self.router)
        self.router.connect(cfg.read_endpoint)
        self.ready = False
        self.served = 0
        self.waiting: list[tuple[float, list]] = []  # (since, query) held for their position
        self.stop = StopSignal()
        self.router.send_multipart(wire.message(wire.HELLO, self._status()))

    def _apply(self, event: dict) -> None:
        projection = self.projections.get(event["context"])
        if projection is not None:
            projection.apply(event)

    def _status(self) -> dict:
        return {"role": "read", "pid": os.getpid(), "ready": self.ready,
                "position": self.sub.position,
                "counters": {**self.sub.counters, "queries": self.served}}

    def start(self) -> None:
        """Subscribe first (done), then replay the store; ready only once caught up."""
        while not self.sub.catch_up(timeout=1.0):
            if self.stop.requested:
                return
        self.ready = True
        self.router.send_multipart(wire.message(wire.STATUS, self._status()))
        self.log.info("ready at position %d", self.sub.position)

    def run(self) -> None:
        self.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.sub.socket, zmq.POLLIN)
        poller.register(self.stop.fd, zmq.POLLIN)
        next_status = 0.0
        while not self.stop.requested:
            ready = dict(poller.poll(50 if self.waiting else 200))
            if self.sub.socket in ready:
                self.sub.drain()
            if self.router in ready:
                self._take_queries()
            now = time.monotonic()
            if self.waiting and now - self.waiting[0][0] > NUDGE_AFTER:
                self.sub.catch_up()
            self._answer_waiting(now)
            if now >= next_status:
                self.router.send_multipart(wire.message(wire.STATUS, self._status()))
                next_status = now + STATUS_EVERY
        self.close()

    def _take_queries(self) -> None:
        now = time.monotonic()
        taken = 0
        while taken < MAX_BATCH:
            try:
                kind, body = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if kind == wire.QUERIES:
                queries = wire.unpack(body)
                taken += len(queries)
                self.waiting.extend((now, q) for q in queries)

    def _answer_waiting(self, now: float) -> None:
        if not self.waiting:
            return
        answers, held = [], []
        for since, query in self.waiting:
            if query[4] <= self.sub.position:
                answers.append([query[0], self.answer(*query[1:])])
            else:
                held.append((since, query))
        self.waiting = held
        if answers:
            self.served += len(answers)
            body = {"position": self.sub.position, "items": answers}
            self.router.send_multipart(wire.message(wire.ANSWERS, body))

    def answer(self, context: str, name: str, params: object, at: int) -> dict:
        projection = self.projections.get(context)
        handler = projection and projection.queries.get(name)
        if handler is None:
            return {"error": [10, f"not supported: unknown query {name}"]}
        try:
            # Rendered here, not in the router: the router is the busier process, and
            # read sides scale out.
            return {"json": dumps(handler(params if isinstance(params, dict) else {}, at))}
        except BadParams as bad:
            return {"error": [12, str(bad)]}
        except Exception:
            logging.getLogger("read").exception("query %s.%s crashed", context, name)
            return {"error": [13, f"crash: internal error in {name}"]}

    def close(self) -> None:
        self.sub.close()
        self.router.close()
        self.secure.close()
        self.ctx.term()


def main(cfg: Config) -> None:
    collect_garbage_rarely()
    ReadSide(cfg).run()
