"""The write side's loop: take every waiting command as one batch, commit, publish, reply."""
from __future__ import annotations

import os
import time
from typing import NoReturn

import zmq

from common import runtime, store_url, wire
from common.buckets import BATCH_SIZES, COMMIT_MICROSECONDS, FlatHistogram
from common.config import FATAL_EXIT, SHARED_STORE_SCHEMES, Config
from common.log import setup
from common.security import Curve
from common.stopping import StopSignal
from common.timefmt import now_utc
from common.tuning import collect_garbage_rarely
from write_side.catchup import CatchupServer
from write_side.contexts import load_all
from write_side.decider import Decider
from write_side.lock import lock_folder
from write_side.publisher import Publisher
from write_side.store import StoreCorrupt, StoreError, local_folder, open_store

STATUS_EVERY = 0.5
# Commands per transaction at most: large enough that a sync is shared by many commands,
# small enough that results and status keep flowing (the router drops a back-end silent
# for two seconds), and well under the router's backlog (MAX_PENDING), so the next batch
# is already waiting when a commit ends: with batches as big as the backlog the two
# sides took turns, and a 20,000-command burst took 30% longer.
MAX_BATCH = 2048


class WriteSide:
    def __init__(self, cfg: Config) -> None:
        self.log = setup("write")
        self.cfg = cfg
        where = store_url.resolve(cfg.store, cfg.data_dir, cfg.runtime_dir)
        # The store's folder on this host holds the lock that keeps a second write side off
        # the store, however each named it; a store in memory has none, and needs none.
        folder = local_folder(where)
        self.lock = lock_folder(folder) if folder is not None else None
        # Said in every hello and status: a write side on a store with one writer
        # replaces any other at the router; one on a shared store joins the others.
        # (More than one asked for on such a store is refused with the settings:
        # config.parse.)
        self.exclusive = where.scheme not in SHARED_STORE_SCHEMES
        self.store = open_store(where, cfg.sync, max_pages=cfg.fault_max_pages)
        # Read at start, so that a damaged last event stops the node before it serves; and
        # a clock behind the store is said once, not at each batch it changes.
        last, now = self.store.last_recorded_at(), now_utc()
        if last >= now:
            self.log.warning("the clock reads %s, not after the store's last event (%s): "
                             "events are stamped just after that until the clock passes it",
                             now, last)
        self.decider = Decider(self.store, load_all())
        self.ctx = wire.context()
        self.secure = Curve(self.ctx)
        self.drops = wire.Drops(self.log)  # malformed messages from any peer, in status
        self.publisher = Publisher(self.ctx, cfg.events_endpoint, cfg.catchup_endpoint,
                                   self.secure)
        self.catchup = CatchupServer(self.ctx, cfg.catchup_endpoint, self.store, self.drops,
                                     self.secure)
        if not cfg.no_sample_data:
            self.publisher.publish(self.decider.seed())
        self.publisher.head = self.store.head
        self.router = self.ctx.socket(zmq.DEALER)
        self.router.setsockopt(zmq.LINGER, 1000)
        self.secure.client(self.router)
        self.router.connect(cfg.write_endpoint)
        self.commands = 0
        # Shown in status as integer counters (common.buckets), for the monitor.
        self.batch_sizes = FlatHistogram("batch_size", BATCH_SIZES)
        self.commit_us = FlatHistogram("commit_us", COMMIT_MICROSECONDS)
        self.stop = StopSignal()
        self.router.send_multipart(wire.message(wire.HELLO, self._status()))
        # str(where): a database URL without its password (common.store_url).
        self.log.info("ready: head %d, store %s", self.store.head,
                      where if folder is None else f"in {folder}")

    def _status(self) -> wire.Report:
        return wire.Report("write", os.getpid(), True, self.store.head,
                           {"commands": self.commands, "published": self.publisher.published,
                            "dropped_on_purpose": self.publisher.dropped_on_purpose,
                            "catchup_served": self.catchup.served,
                            "catchup_not_sent": self.catchup.not_sent,
                            "dropped_messages": self.drops.count,
                            **self.batch_sizes.counters(), **self.commit_us.counters()},
                           self.exclusive)

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
        requests: list[wire.CommandRequest] = []
        while len(requests) < MAX_BATCH:
            try:
                parts = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                requests.extend(wire.from_router(parts, wire.COMMANDS, wire.command_requests))
            except wire.BadFrame as bad:
                self.drops.drop("the router connection", "router", bad)
        if not requests:
            return
        started = time.monotonic()
        outcomes, stored = self.decider.run(requests)
        self.commit_us.observe(int((time.monotonic() - started) * 1_000_000))
        self.batch_sizes.observe(len(requests))
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
    except (StoreError, StoreCorrupt) as exc:
        stop_the_node(cfg, "cannot start", exc)
    try:
        side.run()
    except StoreCorrupt as exc:
        # Fatal, not a crash: a restart would open the same damaged store and serve what it
        # still can, so the node stops and says why (the launcher answers error 11).
        stop_the_node(cfg, "stopping", exc)


def stop_the_node(cfg: Config, doing: str, exc: BaseException) -> NoReturn:
    """Exit with FATAL_EXIT after leaving the reason where the launcher reads it: the
    supervisor then restarts nothing, and the launcher stops the node, answering every
    waiting request with error 11 and this reason."""
    setup("write").error("%s: %s", doing, exc)
    runtime.write_fatal(cfg.runtime_dir, str(exc))
    raise SystemExit(FATAL_EXIT)
