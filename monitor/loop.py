"""The monitor's loop: follow the event stream gap-free, ask the router for stats once a
second, and serve what it learns over HTTP (monitor.web, on threads of its own).

It is a subscriber like any tap: the node does not notice it. It replays the store from the
start, so its event counts are the store's, then follows live. Nothing it does can stop
the node: it binds nothing but its HTTP port, and a port it cannot bind is tried again.
"""
from __future__ import annotations

import time

import zmq

from common import catchup_sources, timefmt, wire
from common.catchup_sources import StoreUnreadable
from common.config import FATAL_EXIT, Config
from common.log import setup
from common.security import Curve
from common.stopping import StopSignal
from common.subscription import Subscription
from monitor.scan import ScanFailed, scan_stream
from monitor.stats_client import StatsClient
from monitor.streams import state_at
from monitor.view import NodeView

TURN = 0.25  # seconds: events go to the pages at most this late


class Monitor:
    def __init__(self, cfg: Config) -> None:
        self.log = setup("monitor")
        self.cfg = cfg
        self.ctx = wire.context()
        self.secure = Curve(self.ctx)
        self.drops = wire.Drops(self.log)
        self.view = NodeView()
        # Stored events from where a read side reads them (the write side's catch-up
        # endpoint, or a database every process reads); live ones from every write side.
        source = catchup_sources.for_store(self.ctx, cfg.store, cfg.catchup_endpoint,
                                           self.secure, self.drops)
        self.sub = Subscription(self.ctx, cfg.events_endpoint, source, self.view.apply_event,
                                secure=self.secure, drops=self.drops)
        self.stats = StatsClient(self.ctx, cfg.client_endpoint, self.secure)
        from monitor.web import Web  # prometheus-client and http.server: only here

        self.web = Web(cfg.http_host, cfg.http_port, self.view, self.lookup)
        self.stop = StopSignal()
        self.ready = False

    def run(self) -> None:
        self.log.info("following %s; asking %s for stats", self.cfg.events_endpoint,
                      self.cfg.client_endpoint)
        self.web.start_if_due(time.monotonic())
        poller = zmq.Poller()
        poller.register(self.sub.socket, zmq.POLLIN)
        poller.register(self.stop.fd, zmq.POLLIN)
        stats_socket = None
        while not self.stop.requested:
            if stats_socket is not self.stats.socket:  # a fresh one after a silent router
                if stats_socket is not None:
                    poller.unregister(stats_socket)
                stats_socket = self.stats.socket
                poller.register(stats_socket, zmq.POLLIN)
            wait = TURN
            gap = self.sub.due_in()  # a gap in the live streams, filled from the store then
            if gap is not None:
                wait = min(wait, gap)
            ready = dict(poller.poll(int(wait * 1000) + 1))
            now = time.monotonic()
            if not self.ready:
                # The whole store first: its counts are then the store's. Live events wait
                # on the socket meanwhile, and duplicates among them are dropped.
                self.ready = self.sub.catch_up(timeout=1.0)
            if self.sub.socket in ready:
                self.sub.drain()
            if self.ready:
                self.sub.heal_if_due()
            if stats_socket in ready:
                data = self.stats.receive(now)
                if data is not None:
                    self._publish_own()
                    self.view.on_stats(data, now)
            self.stats.ask_if_due(now)
            self.web.start_if_due(now)
            self._publish_own()
            self.view.flush_events()
        self.close()

    def _publish_own(self) -> None:
        counters = {**self.sub.counters, "dropped_messages": self.drops.count}
        self.view.set_own(self.sub.position, self.sub.head, self.ready, counters)

    def lookup(self, context: str, stream_id: str, at: str) -> dict:
        """For the stream browser (called on an HTTP thread): the stream's history, from the
        monitor's memory when it holds all of it, else replayed from the store, and its
        state at `at` (now when empty). ValueError for a time that does not parse."""
        at = timefmt.canonical(at) if at else timefmt.now_utc()
        key = (context, stream_id)
        held = self.view.stream(key)
        source = "monitor"
        if held is None or not held.complete:
            try:
                events = scan_stream(self._new_source, context, stream_id)
            except ScanFailed as failed:
                if held is None:
                    return {"error": f"cannot read the stream from the store: {failed}"}
                events = held.events  # what we have, said to be partial
            else:
                if events:
                    self.view.replace_stream(key, events)
                held = self.view.stream(key)
                source = "store"
        events = held.events if held is not None else []
        return {"context": context, "stream_id": stream_id, "source": source,
                "complete": held.complete if held is not None else True, "events": events,
                "at": at, "state": state_at(events, at)}

    def _new_source(self) -> catchup_sources.CatchupSource:
        """A catch-up source of its own for a scan (called on an HTTP thread: a ZeroMQ
        socket belongs to one thread)."""
        return catchup_sources.for_store(self.ctx, self.cfg.store, self.cfg.catchup_endpoint,
                                         self.secure)

    def close(self) -> None:
        self.web.stop()
        self.stats.close()
        self.sub.close()
        self.secure.close()
        self.ctx.term()


def main(cfg: Config) -> None:
    try:
        Monitor(cfg).run()
    except StoreUnreadable as exc:
        # A restart would read the same store: stop for good (the node is not affected).
        setup("monitor").error("stopping: %s", exc)
        raise SystemExit(FATAL_EXIT) from None
