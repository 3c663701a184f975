"""The read side's loop: apply events gap-free, answer queries once caught up to their position."""
from __future__ import annotations

import logging
import os
import time

import zmq

from common import catchup_sources, errors, runtime, wire
from common.catchup_sources import StoreUnreadable
from common.errors import CRASH, NOT_SUPPORTED, ProtocolError
from common import config
from common.config import FATAL_EXIT, Config
from common.jsontext import dumps
from common.log import setup
from common.security import Curve
from common.stopping import StopSignal
from common.subscription import Subscription
from common.tuning import collect_garbage_rarely
from read_side.contexts import load_all
from read_side.snapshot import Snapshots

STATUS_EVERY = 0.5
MAX_BATCH = 8192  # queries taken per round, so status keeps flowing under a flood
NUDGE_AFTER = 0.1  # a query waiting this long for its position triggers a catch-up
# Seconds of answering per round at most; the queries left wait for the next round. A
# round also drains events and reports status (every STATUS_EVERY), so however costly a
# flood of queries is, neither stops (the router drops a read side silent for 2 s).
ANSWER_BUDGET = 0.1
# A snapshot is written once the state has grown by a quarter since the last one (at
# least SNAPSHOT_MIN events): its cost grows with the state, so this keeps it a small
# share of the work, and a restart replays at most a fifth of the store.
SNAPSHOT_MIN = config.value("snapshot_min")


class ReadSide:
    def __init__(self, cfg: Config) -> None:
        self.log = setup("read")
        self.projections = load_all()
        self.ctx = wire.context()
        self.secure = Curve(self.ctx)
        self.drops = wire.Drops(self.log)  # malformed messages from any peer, in status
        # Stored events come from the database itself on a store every process reads
        # (PostgreSQL), else from the write side's catch-up endpoint; live ones from every
        # write side's stream.
        source = catchup_sources.for_store(self.ctx, cfg.store, cfg.catchup_endpoint,
                                           self.secure, self.drops)
        self.log.info("following %s; stored events from %s", cfg.events_endpoint, source.where)
        self.sub = Subscription(self.ctx, cfg.events_endpoint, source, self._apply,
                                secure=self.secure, drops=self.drops)
        self.router = self.ctx.socket(zmq.DEALER)
        self.router.setsockopt(zmq.LINGER, 1000)
        self.secure.client(self.router)
        self.router.connect(cfg.read_endpoint)
        self.ready = False
        self.served = 0
        self.last_event_id = ""
        self.snapshots = Snapshots(cfg.data_dir) if cfg.data_dir else None
        self.snapshot_position = 0
        # (since, query) held until the projections reach the query's position
        self.waiting: list[tuple[float, wire.QueryRequest]] = []
        self.backlog = False  # waiting queries left answerable when a round's budget ran out
        self.behind_since: float | None = None  # the oldest waiting for a later position
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
            self.snapshots.refuse(snap)  # so the next snapshot due replaces it
            return
        self.projections = snap.projections
        self.sub.start_at(snap.position)
        self.snapshot_position = snap.position
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

    def _status(self) -> wire.Report:
        return wire.Report("read", os.getpid(), self.ready, self.sub.position,
                           {**self.sub.counters, "queries": self.served,
                            "dropped_messages": self.drops.count})

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
            wait = 0 if self.backlog else 50 if self.waiting else 200
            gap = self.sub.due_in()  # a gap in the live streams, filled from the store then
            if gap is not None:
                wait = min(wait, int(gap * 1000) + 1)
            ready = dict(poller.poll(wait))
            if self.sub.socket in ready:
                self.sub.drain()
            self.sub.heal_if_due()
            if self.router in ready:
                self._take_queries()
            now = time.monotonic()
            if self.behind_since is not None and now - self.behind_since > NUDGE_AFTER:
                self.sub.catch_up()
            self._answer_waiting()
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
                parts = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                queries = wire.from_router(parts, wire.QUERIES, wire.query_requests)
            except wire.BadFrame as bad:
                self.drops.drop("the router connection", "router", bad)
                continue
            taken += len(queries)
            self.waiting.extend((now, q) for q in queries)

    def _answer_waiting(self) -> None:
        """Answer, oldest first, the waiting queries whose position is reached, for at most
        ANSWER_BUDGET seconds; the rest keep their place for the next round."""
        self.backlog, self.behind_since = False, None
        if not self.waiting:
            return
        position, deadline = self.sub.position, time.monotonic() + ANSWER_BUDGET
        answers, held = [], []
        for index, (since, query) in enumerate(self.waiting):
            if query.at > position:
                held.append((since, query))
                continue
            answers.append(wire.QueryAnswer(query.seq, self.answer(query)))
            if time.monotonic() > deadline:
                rest = self.waiting[index + 1:]
                held += rest
                self.backlog = any(q.at <= position for _, q in rest)
                break
        self.waiting = held
        # Arrival order: the first held for a later position is the oldest of them.
        self.behind_since = next((since for since, q in held if q.at > position), None)
        if answers:
            self.served += len(answers)
            body = wire.Answers(self.sub.position, answers)
            self.router.send_multipart(wire.message(wire.ANSWERS, body))

    def answer(self, query: wire.QueryRequest) -> dict:
        """The query's result as of its position: its data as JSON text, or an error."""
        context, name, params = query.context, query.name, query.params
        projection = self.projections.get(context)
        handler = projection and projection.queries.get(name)
        if handler is None:
            return {"error": errors.pair(NOT_SUPPORTED, f"unknown query {name}")}
        try:
            # Rendered here, not in the router: the router is the busier process, and
            # read sides scale out.
            return {"json": dumps(handler(params if isinstance(params, dict) else {}, query.at))}
        except ProtocolError as bad:
            return {"error": bad.as_pair()}
        except Exception:
            logging.getLogger("read").exception("query %s.%s crashed", context, name)
            return {"error": errors.pair(CRASH, f"internal error in {name}")}

    def close(self) -> None:
        if self.snapshots is not None:
            self.snapshots.stop()
        self.sub.close()
        self.router.close()
        self.secure.close()
        self.ctx.term()


def main(cfg: Config) -> None:
    collect_garbage_rarely()
    side = None
    try:
        side = ReadSide(cfg)
        side.run()
    except StoreUnreadable as exc:
        if side is not None:
            side.close()
        # Fatal, not a crash: a restart would read the same damaged store. As the write
        # side does for its store (write_side.loop.stop_the_node): the reason goes where
        # the launcher reads it, and FATAL_EXIT tells the supervisor to restart nothing,
        # so the node stops and answers error 11 with this reason.
        logging.getLogger("read").error("stopping: %s", exc)
        runtime.write_fatal(cfg.runtime_dir, str(exc))
        raise SystemExit(FATAL_EXIT)
