"""cqrs-tap: print the node's event stream, one JSON line per event, with no gap and no duplicate.

    cqrs-tap --endpoint ipc:///tmp/cqrs-node-x/events.sock [--from-position 1]
             [--filter accounts.] [--count 10]

It is a plain subscriber (SUB on the events endpoint, DEALER on the catch-up
endpoint): it binds nothing and the node does not know it is there.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import zmq

from common import wire
from common.security import Curve
from common.stopping import StopSignal, drain_pipe
from common.subscription import Subscription


def default_catchup(events_endpoint: str) -> str:
    """The launcher's convention: catchup.sock beside events.sock, or the next TCP port."""
    if events_endpoint.startswith("ipc://"):
        return os.path.join(os.path.dirname(events_endpoint), "catchup.sock")
    if events_endpoint.startswith("tcp://"):
        host, _, port = events_endpoint.rpartition(":")
        if port.isdigit():
            return f"{host}:{int(port) + 1}"
    raise SystemExit(f"cannot derive a catch-up endpoint from {events_endpoint}: "
                     "pass --catchup-endpoint")


class Tap:
    def __init__(self, args: argparse.Namespace, out=sys.stdout) -> None:
        self.filter = args.filter
        self.left = args.count
        self.out = out
        self.ctx = wire.context()
        catchup = args.catchup_endpoint or default_catchup(args.endpoint)
        start = args.from_position - 1 if args.from_position else 0
        self.sub = Subscription(self.ctx, args.endpoint, catchup, self._print, position=start,
                                secure=Curve(self.ctx))
        if not args.from_position:
            self.sub.position = self.sub.head = self._current_head()

    def _current_head(self) -> int:
        reply = None
        while reply is None:
            reply = self.sub.head_only()
        return reply

    def _print(self, event: dict) -> None:
        if self.done:
            return
        topic = f"{event['context']}.{event['type']}"
        if topic.startswith(self.filter):
            self.out.write(json.dumps(event) + "\n")
            if self.left is not None:
                self.left -= 1

    @property
    def done(self) -> bool:
        return self.left is not None and self.left <= 0

    def run(self) -> None:
        stop = StopSignal()
        poller = zmq.Poller()
        poller.register(self.sub.socket, zmq.POLLIN)
        poller.register(stop.fd, zmq.POLLIN)
        self.sub.catch_up()
        self.out.flush()
        while not self.done and not stop.requested:
            ready = dict(poller.poll(1000))
            if stop.fd in ready:
                drain_pipe(stop.fd)
            if self.sub.socket in ready:
                self.sub.drain()
                self.out.flush()
        self.sub.close()
        self.ctx.term()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="cqrs-tap", description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", default=os.environ.get("CQRS_EVENTS_ENDPOINT", ""),
                    help="the node's events endpoint (logged as 'events endpoint: ...')")
    ap.add_argument("--catchup-endpoint", default=os.environ.get("CQRS_CATCHUP_ENDPOINT", ""),
                    help="the write side's catch-up endpoint (default: derived from --endpoint)")
    ap.add_argument("--from-position", type=int, default=0,
                    help="replay stored events from this position, then follow live")
    ap.add_argument("--filter", default="", help="only topics starting with this, e.g. accounts.")
    ap.add_argument("--count", type=int, default=None, help="exit after this many events")
    args = ap.parse_args(argv)
    if not args.endpoint:
        ap.error("--endpoint is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        Tap(parse_args(argv)).run()
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
