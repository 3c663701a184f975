"""cqrs-tap: print the node's event stream, one JSON line per event, with no gap and no duplicate.

    cqrs-tap --endpoint ipc:///tmp/cqrs-node-x/events.sock [--from-position 1]
             [--filter accounts.] [--count 10] [--store postgresql://...]

It is a plain subscriber (SUB on the events endpoint, DEALER on the catch-up
endpoint): it binds nothing and the node does not know it is there. The catch-up
endpoint is the one the node's heartbeat announces, unless --catchup-endpoint names
one. With no sign of a node within --connect-timeout seconds it exits with status 1
and says why on stderr.

On a PostgreSQL store (--store, or CQRS_STORE as in service mode) it reads stored
events from the database itself instead, putting no load on any write side, and follows
the live stream of every write side named in --endpoint (comma-separated), printing
their events merged in position order (common.subscription). A damaged store (an event
that does not match its checksum) ends it with status 1 and the reason on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

if __name__ == "__main__":
    # `python -m common.tap` with an interpreter that lacks pyzmq: the same command under
    # the project's .venv (pure standard library, so this runs before `import zmq`).
    from common import dependencies

    dependencies.ensure("cqrs-tap", ["-m", "common.tap", *sys.argv[1:]])

import zmq  # noqa: E402  (after the dependency check above)

from common import catchup_sources, config, reach, store_url, wire  # noqa: E402
from common.catchup_sources import (CatchupSource, DatabaseSource, EndpointSource,  # noqa: E402
                                    StoreUnreadable)
from common.errors import INT64_MAX  # noqa: E402
from common.security import Curve  # noqa: E402
from common.stopping import StopSignal, drain_pipe  # noqa: E402
from common.subscription import Subscription  # noqa: E402

_ANY_HOST = ("*", "0.0.0.0", "[::]", "::")  # what a bind address may be, but not a connect one
BUSY_WAIT = 1.0  # seconds of events with no heartbeat before the default place is tried


class NoNode(Exception):
    """The tap found no node to follow; its text says where it looked and what to check."""


def reachable(announced: str, events_endpoint: str) -> str:
    """The announced catch-up endpoint as this tap can connect to it: a write side that binds
    every interface (tcp://0.0.0.0:P, tcp://*:P) announces its bind address, which names no
    host, so the host the events came from is used with the announced port."""
    if announced.startswith("tcp://") and events_endpoint.startswith("tcp://"):
        host, colon, port = announced[len("tcp://"):].rpartition(":")
        if colon and host in _ANY_HOST:
            events_host = events_endpoint[len("tcp://"):].rpartition(":")[0]
            return f"tcp://{events_host}:{port}"
    return announced


def launcher_default(events_endpoint: str) -> str:
    """Where run_node.py puts the catch-up endpoint when told only the events endpoint
    (router/launcher.py): the next port of a TCP one, catchup.sock beside the default ipc
    one ('' when there is no such place). Only a fallback: see Tap._announced."""
    if events_endpoint.startswith("ipc://") and events_endpoint.endswith("/events.sock"):
        return events_endpoint[:-len("events.sock")] + "catchup.sock"
    if events_endpoint.startswith("tcp://"):
        host, colon, port = events_endpoint.rpartition(":")
        if colon and port.isdigit() and int(port) < 65535:
            return f"{host}:{int(port) + 1}"
    return ""


class Tap:
    def __init__(self, args: argparse.Namespace, out=sys.stdout) -> None:
        self.filter = args.filter
        self.left = args.count
        self.out = out
        self.ctx = wire.context()
        self.secure = Curve(self.ctx)
        self.sub: Subscription | None = None
        try:
            self._start(args)
        except BaseException:
            self.close()
            raise

    def _start(self, args: argparse.Namespace) -> None:
        endpoints = config.endpoint_list(args.endpoint)
        source: CatchupSource
        if args.store and catchup_sources.reads_the_database(args.store):
            # Stored events from the database; the events endpoints only for live ones.
            self._find_node(endpoints, "", args.connect_timeout, need_catchup=False)
            source = DatabaseSource(args.store)
        else:
            catchup = self._find_node(endpoints, args.catchup_endpoint, args.connect_timeout)
            source = EndpointSource(self.ctx, catchup, self.secure)
        start = args.from_position - 1 if args.from_position else 0
        self.sub = Subscription(self.ctx, endpoints, source, self._print, position=start,
                                secure=self.secure)
        head = self._head(source, args.connect_timeout, told=bool(args.catchup_endpoint))
        if not args.from_position:
            self.sub.start_at(head)

    def _find_node(self, endpoints: list[str], catchup: str, timeout: float,
                   need_catchup: bool = True) -> str:
        """Wait for the node's events endpoints (any one of them): a handshake when the
        catch-up endpoint is given or not needed, else a heartbeat, which announces the
        catch-up endpoint. Returns the catch-up endpoint; NoNode when the node does not
        show up within `timeout` s."""
        endpoint = ",".join(endpoints)
        probe = self.ctx.socket(zmq.SUB)
        probe.setsockopt(zmq.LINGER, 0)
        self.secure.client(probe)
        probe.setsockopt(zmq.SUBSCRIBE, b"")  # events too: they show a busy node is there
        watch = reach.ConnectionWatch(probe)
        try:
            for one in endpoints:
                probe.connect(one)
            deadline = time.monotonic() + timeout
            if catchup or not need_catchup:
                if not watch.wait(deadline):
                    raise NoNode(self._no_node(endpoint, timeout, watch.seen()))
                return catchup
            # Several write sides (a shared store) serve the same store: whichever
            # heartbeat comes first names a catch-up endpoint that will do. Made reachable
            # from the first events endpoint's host (give --catchup-endpoint, or --store,
            # when the write sides are on several hosts).
            announced = self._announced(probe, endpoints[0], deadline)
            if announced:
                return announced
            if not watch.update():
                raise NoNode(self._no_node(endpoint, timeout, watch.seen()))
            raise NoNode(f"cqrs-tap: {endpoint} took the connection but sent no heartbeat "
                         f"naming its catch-up endpoint within {timeout:g} s: it may not be a "
                         "node's events endpoint (run_node.py logs that one as 'events "
                         "endpoint: ...'); pass --catchup-endpoint E, or a longer "
                         "--connect-timeout")
        finally:
            watch.close()
            probe.close(0)

    def _announced(self, probe: zmq.Socket, endpoint: str, deadline: float) -> str:
        """The catch-up endpoint of the first heartbeat on `probe`, or '' by the deadline.

        The write side sends heartbeats when it has published nothing for a while, so one
        that publishes without pause may send none. Once events have flowed for
        BUSY_WAIT seconds with no heartbeat, the place run_node.py puts the catch-up
        endpoint by default is tried: taken if the write side answers there."""
        first_event = 0.0
        tried_default = False
        while (left := deadline - time.monotonic()) > 0:
            if probe.poll(int(min(left, 0.1) * 1000) + 1):
                topic, *rest = probe.recv_multipart()
                if topic != wire.HEARTBEAT_TOPIC:
                    first_event = first_event or time.monotonic()
                else:
                    try:
                        beat = wire.heartbeat_body(rest[0]) if len(rest) == 1 else None
                    except wire.BadFrame:
                        beat = None
                    if beat is not None and beat.catchup:
                        return reachable(beat.catchup, endpoint)
            busy = first_event and time.monotonic() - first_event >= BUSY_WAIT
            if busy and not tried_default:
                tried_default = True
                candidate = launcher_default(endpoint)
                if candidate and self._answers(candidate, deadline):
                    sys.stderr.write(f"cqrs-tap: no heartbeat yet (the node publishes "
                                     f"without pause); replaying from {candidate}, where "
                                     "run_node.py puts the catch-up endpoint by default\n")
                    return candidate
        return ""

    def _answers(self, candidate: str, deadline: float) -> bool:
        """Whether a catch-up server answers at `candidate` before the deadline (1 s at most)."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        self.secure.client(sock)
        try:
            sock.connect(candidate)
            sock.send(wire.catchup_request(0, INT64_MAX, 1))  # nothing after: only the head
            wait = min(1.0, max(0.0, deadline - time.monotonic()))
            if not sock.poll(int(wait * 1000) + 1):
                return False
            try:
                wire.catchup_reply_body(wire.frames(sock.recv_multipart(), 1, "a reply")[0])
            except wire.BadFrame:
                return False
            return True
        finally:
            sock.close(0)

    @staticmethod
    def _no_node(endpoint: str, timeout: float, seen: str) -> str:
        return reach.no_node_message("cqrs-tap", endpoint, timeout, seen,
                                     "run_node.py logs its own on stderr as 'events "
                                     "endpoint: ...'")

    def _head(self, source: CatchupSource, timeout: float, told: bool) -> int:
        """The store's head, asked of the catch-up source: its answer is also the proof
        that the tap can replay from there. NoNode after `timeout` s of silence."""
        assert self.sub is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            head = self.sub.head_only(min(left, 2.0))
            if head is not None:
                return head
        if isinstance(source, DatabaseSource):
            raise NoNode(f"cqrs-tap: {source.where} (--store) did not answer within "
                         f"{timeout:g} s, so stored events cannot be replayed. Likely causes: "
                         "a wrong URL, a server that is down or refuses this host, or "
                         "credentials it does not accept")
        origin = ("as --catchup-endpoint gave it" if told else
                  "as the node's heartbeat announced it; from another host, give one this "
                  "host can reach with --catchup-endpoint")
        raise NoNode(f"cqrs-tap: the catch-up endpoint {source.where} ({origin}) did not "
                     f"answer within {timeout:g} s, so stored events cannot be replayed. "
                     "Likely causes: a wrong endpoint, a write side that is down, or CURVE "
                     "keys it does not accept")

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
        assert self.sub is not None
        stop = StopSignal()
        poller = zmq.Poller()
        poller.register(self.sub.socket, zmq.POLLIN)
        poller.register(stop.fd, zmq.POLLIN)
        self.sub.catch_up()
        self.out.flush()
        while not self.done and not stop.requested:
            gap = self.sub.due_in()  # a gap in the live streams, filled from the store then
            ready = dict(poller.poll(1000 if gap is None else int(gap * 1000) + 1))
            if stop.fd in ready:
                drain_pipe(stop.fd)
            if self.sub.socket in ready:
                self.sub.drain()
            self.sub.heal_if_due()
            self.out.flush()

    def close(self) -> None:
        if self.sub is not None:
            self.sub.close()
        self.secure.close()
        self.ctx.term()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="cqrs-tap", description=__doc__.split("\n\n")[0])
    events, catchup = config.setting("events_endpoint"), config.setting("catchup_endpoint")
    store = config.setting("store")
    ap.add_argument("--endpoint", default=events.value(), metavar="E",
                    help="the node's events endpoint, logged by run_node.py as "
                         "'events endpoint: ...'; with several write sides, theirs "
                         f"comma-separated [env {events.var}; required]")
    ap.add_argument("--catchup-endpoint", default=catchup.value(), metavar="E",
                    help=f"the write side's catch-up endpoint [env {catchup.var}; "
                         "default: the one the node's heartbeat announces]")
    ap.add_argument("--store", default=store.value(), metavar="URL",
                    help="the node's store URL: a PostgreSQL store (postgresql://...) is "
                         "read directly, without asking any write side; any other is read "
                         f"through the catch-up endpoint [env {store.var}; default: none]")
    ap.add_argument("--from-position", type=int, default=0, metavar="N",
                    help="replay stored events from this position, then follow live "
                         "[default: only events published from now on]")
    ap.add_argument("--filter", default="", metavar="PREFIX",
                    help="only topics starting with this, e.g. accounts. [default: every topic]")
    ap.add_argument("--count", type=int, default=None, metavar="N",
                    help="exit after this many events [default: no limit]")
    ap.add_argument("--connect-timeout", type=float, default=reach.DEFAULT_CONNECT_TIMEOUT,
                    metavar="S",
                    help="exit with status 1 when no node shows itself within this many "
                         f"seconds [default: {reach.DEFAULT_CONNECT_TIMEOUT:g}]")
    args = ap.parse_args(argv)
    if not config.endpoint_list(args.endpoint):
        ap.error("--endpoint is required")
    if args.store:
        try:
            store_url.parse(args.store)
        except ValueError as exc:
            ap.error(f"--store: {exc}")
    if not 0 <= args.from_position <= INT64_MAX:
        ap.error(f"--from-position must be a position from 1 to {INT64_MAX} (0: from now on)")
    if args.count is not None and args.count < 1:
        ap.error("--count must be at least 1")
    bad = reach.check_seconds(args.connect_timeout, "--connect-timeout")
    if bad:
        ap.error(bad)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tap = Tap(args)
    except (NoNode, StoreUnreadable) as no:
        sys.stderr.write(f"{no}\n")
        return 1
    try:
        tap.run()
    except BrokenPipeError:
        pass
    except StoreUnreadable as exc:
        # What it printed stays true; what follows cannot be read, so it says so and ends.
        sys.stderr.write(f"cqrs-tap: stopping: {exc}\n")
        return 1
    finally:
        tap.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
