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
from read_side.snapshot import Snapshots

STATUS_EVERY = 0.5
MAX_BATCH = 8192  # queries taken per round, so status keeps flowing under a flood
NUDGE_AFTER = 0.1  # a query waiting this long for its position triggers a catch-up
# A snapshot is written once the state has grown by a quarter since the last one (at
# least SNAPSHOT_MIN events): its cost grows with the state, so this keeps it a small
# share of the work, and a restart replays at most a fifth of the store.
SNAPSHOT_MIN = int(os.environ.get("CQRS_SNAPSHOT_MIN", "250000") or 250_000)


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
        self.last_event_id = ""
        self.snapshots = Snapshots(cfg.data_dir) if cfg.data_dir else None
        self.snapshot_position = 0
        self.waiting: list[tuple[float, list]] = []  # (since, query) held for their position
        self.stop = StopSignal()
        self.router.send_multipart(wire.message(wire.HELLO, self._status()))

    def _apply(self, event: dict) -> None:
        projection = self.projections.get(event["context"])
        if projection is not None:
            projection.apply(event)
        self.last_event_id = event["event_id"]

    def _take_up_snapshot(self) -> None:
        snap = self.snapshots.load()
        if snap is None:
            return
        answered, event = False, None
        while not answered:
            if self.stop.requested:
                return
            answered, event = self.sub.event_at(snap.position, timeout=1.0)
        if event is None or event["event_id"] != snap.event_id:
            self.log.warning("snapshot at position %d does not match the store; rebuilding "
                             "from the start", snap.position)
            return
        self.projections = snap.projections
        self.sub.position = self.sub.head = self.snapshot_position = snap.position
        self.last_event_id = snap.event_id
        self.log.info("took up the snapshot at position %d", snap.position)

    def _snapshot_if_due(self) -> None:
        """Write a snapshot in the background once the state has grown enough."""
        grown = self.sub.position - self.snapshot_position
        if grown < max(SNAPSHOT_MIN, self.snapshot_position // 4) or self.snapshots.busy():
            return
        on_disk = self.snapshots.position_on_disk()  # maybe another replica's, newer
        if on_disk > self.snapshot_position:
            self.snapshot_position = on_disk
            return
        if self.snapshots.save_in_background(self.sub.position, self.last_event_id,
                                             self.projections):
            self.snapshot_position = self.sub.position

    def _status(self) -> dict:
        return {"role": "read", "pid": os.getpid(), "ready": self.ready,
                "position": self.sub.position,
                "counters": {**self.sub.counters, "queries": self.served}}

    def start(self) -> None:
        """Subscribe first (done), take up a snapshot if the store still matches it, then
        replay the rest of the store; ready only once caught up."""
        if self.snapshots is not None:
            self.snapshots.remove_orphans()
            self._take_up_snapshot()
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
            if self.snapshots is not None and self.ready:
                self._snapshot_if_due()
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
        if self.snapshots is not None:
            self.snapshots.stop()
        self.sub.close()
        self.router.close()
        self.secure.close()
        self.ctx.term()


def main(cfg: Config) -> None:
    collect_garbage_rarely()
    ReadSide(cfg).run()
