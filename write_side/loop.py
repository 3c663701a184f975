"""The write side's loop: take every waiting command as one batch, commit, publish, reply."""
from __future__ import annotations

import os
import time

import zmq

from common import runtime, wire
from common.config import FATAL_EXIT, Config
from common.log import setup
from common.security import Curve
from common.stopping import StopSignal
from common.tuning import collect_garbage_rarely
from write_side.catchup import CatchupServer
from write_side.contexts import load_all
from write_side.decider import Decider
from write_side.lock import lock_folder
from write_side.publisher import Publisher
from write_side.store import EventStore, StoreError

STATUS_EVERY = 0.5
# Commands per transaction at most: large enough that a sync is shared by many commands,
# small enough that results and status keep flowing (the router drops a back-end silent
# for two seconds), and well under the router's backlog (MAX_PENDING), so the next batch
# is already waiting when a commit ends: with batches as big as the backlog the two
# sides took turns, and a 20,000-command burst took 30% longer.
MAX_BATCH = 2048


def store_folder(cfg: Config) -> str:
    return cfg.data_dir or cfg.runtime_dir or "."


class WriteSide:
    def __init__(self, cfg: Config) -> None:
        self.log = setup("write")
        self.cfg = cfg
        folder = store_folder(cfg)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"data folder {folder} cannot be created: {exc.strerror}") from exc
        self.lock = lock_folder(folder)
        self.store = EventStore(os.path.join(folder, "events.sqlite3"), cfg.sync,
                                max_pages=int(os.environ.get("CQRS_FAULT_MAX_PAGES", "0") or 0))
        self.decider = Decider(self.store, load_all())
        self.ctx = wire.context()
        self.secure = Curve(self.ctx)
        self.publisher = Publisher(self.ctx, cfg.events_endpoint, self.secure)
        self.catchup = CatchupServer(self.ctx, cfg.catchup_endpoint, self.store, self.secure)
        if not cfg.no_sample_data:
            self.publisher.publish(self.decider.seed())
        self.publisher.head = self.store.head
        self.router = self.ctx.socket(zmq.DEALER)
        self.router.setsockopt(zmq.LINGER, 1000)
        self.secure.client(self.router)
        self.router.connect(cfg.write_endpoint)
        self.commands = 0
        self.stop = StopSignal()
        self.router.send_multipart(wire.message(wire.HELLO, self._status()))
        self.log.info("ready: head %d, store in %s", self.store.head, folder)

    def _status(self) -> dict:
        return {"role": "write", "pid": os.getpid(), "ready": True,
                "position": self.store.head,
                "counters": {"commands": self.commands, "published": self.publisher.published,
                             "dropped_on_purpose": self.publisher.dropped_on_purpose,
                             "catchup_served": self.catchup.served}}

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.catchup.socket, zmq.POLLIN)
        poller.register(self.stop.fd, zmq.POLLIN)
        next_status = 0.0
        while not self.stop.requested:
            ready = dict(poller.poll(100))
            if self.router in ready:
                self._take_commands()
            if self.catchup.socket in ready:
                self.catchup.serve_waiting()
            now = time.monotonic()
            if self.publisher.heartbeat_due(now):
                self.publisher.heartbeat(now)
            if now >= next_status:
                self.router.send_multipart(wire.message(wire.STATUS, self._status()))
                self.secure.report_refusals()
                next_status = now + STATUS_EVERY
        self.close()

    def _take_commands(self) -> None:
        requests: list[list] = []
        while len(requests) < MAX_BATCH:
            try:
                kind, body = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if kind == wire.CMDS:
                requests.extend(wire.unpack(body))
        if not requests:
            return
        outcomes, stored = self.decider.run(requests)
        self.commands += len(requests)
        self.publisher.publish(stored)  # only after the commit; replies only after that
        self.router.send_multipart(wire.message(wire.RESULTS, outcomes))

    def close(self) -> None:
        for sock in (self.router, self.catchup, self.publisher):
            sock.close()
        self.secure.close()
        self.store.close()
        self.ctx.term()


def main(cfg: Config) -> None:
    collect_garbage_rarely()
    try:
        side = WriteSide(cfg)
    except StoreError as exc:
        setup("write").error("cannot start: %s", exc)
        runtime.write_fatal(cfg.runtime_dir, str(exc))
        raise SystemExit(FATAL_EXIT)
    side.run()
