"""cqrs-client: pipe stdin lines to a node in service mode and print its replies in order.

    cqrs-client --connect tcp://127.0.0.1:5550 < requests.jsonl

Each non-blank line goes out as one frame; each reply frame is printed as one
line, exactly as run_node.py would print it. Exits 0 after the last reply once
stdin has ended. Exits 1, saying why on stderr, when no node shows itself at the
endpoint within --connect-timeout seconds (10 by default), or when requests wait
--timeout seconds (30 by default) without any reply.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

if __name__ == "__main__":
    # `python -m router.client` with an interpreter that lacks pyzmq: the same command
    # under the project's .venv (pure standard library, so this runs before `import zmq`).
    from common import dependencies

    dependencies.ensure("cqrs-client", ["-m", "router.client", *sys.argv[1:]])

import zmq  # noqa: E402  (after the dependency check above)

from common import config, reach, wire  # noqa: E402
from common.security import Curve  # noqa: E402

READ_CHUNK = 1 << 20
# Longer than the node's own deadline (--timeout of run_node.py and the router, 5 s by
# default), so that a slow request is answered by the node's error 0 before the client
# gives up on it; short enough that a router gone for good is noticed.
DEFAULT_REPLY_TIMEOUT = 30.0


class Client:
    def __init__(self, endpoint: str, in_fd: int = 0, out_fd: int = 1) -> None:
        self.endpoint = endpoint
        self.ctx = wire.context()
        self.secure = Curve(self.ctx)
        self.socket = self.ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 0)  # never drop a request: queue what must wait
        self.secure.client(self.socket)
        # Watched from before connect(): the handshake is the only sign of a node there is
        # before the first reply, and sending a probe would add to the user's requests.
        self.watch = reach.ConnectionWatch(self.socket)
        self.socket.connect(endpoint)
        self.in_fd, self.out_fd = in_fd, out_fd
        self.partial = b""
        self.sent = self.received = 0
        self.eof = False

    def _send_lines(self, chunk: bytes) -> None:
        lines = (self.partial + chunk).split(b"\n")
        self.partial = b"" if not chunk else lines.pop()
        for line in lines:
            if line.strip():
                self.socket.send(line)
                self.sent += 1

    def _receive(self) -> None:
        out = []
        while True:
            try:
                out.append(self.socket.recv(zmq.NOBLOCK) + b"\n")
            except zmq.Again:
                break
        self.received += len(out)
        data = memoryview(b"".join(out))
        while data:
            data = data[os.write(self.out_fd, data):]

    def run(self, timeout: float, connect_timeout: float = reach.DEFAULT_CONNECT_TIMEOUT) -> int:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.in_fd, zmq.POLLIN)
        started = last_heard = time.monotonic()
        found = False
        while not (self.eof and self.received >= self.sent):
            events = dict(poller.poll(100))
            if events.get(self.in_fd):
                chunk = os.read(self.in_fd, READ_CHUNK)
                self.eof = not chunk
                if self.eof:
                    poller.unregister(self.in_fd)
                self._send_lines(chunk)
            now = time.monotonic()
            if not found:
                found = self.watch.update()
                if found:
                    self.watch.close()
                    last_heard = now  # the reply clock starts once there is a node to answer
                elif now - started > connect_timeout:
                    sys.stderr.write(reach.no_node_message(
                        "cqrs-client", self.endpoint, connect_timeout, self.watch.seen(),
                        "in service mode the router's client endpoint, CQRS_CLIENT_ENDPOINT; "
                        "`make serve` puts it on tcp://127.0.0.1:5550") + "\n")
                    return 1
                continue
            if self.socket in events:
                self._receive()
                last_heard = now
            elif self.received < self.sent and now - last_heard > timeout:
                sys.stderr.write(f"cqrs-client: no reply from {self.endpoint} for {timeout:g} s; "
                                 f"{self.sent - self.received} requests unanswered\n")
                return 1
            elif self.received >= self.sent:
                last_heard = now
        return 0

    def close(self) -> None:
        self.watch.close()
        self.socket.close()
        self.secure.close()
        self.ctx.term()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="cqrs-client", description=__doc__.split("\n\n")[0])
    endpoint = config.setting("client_endpoint")
    default = config.SERVICE_DEFAULTS["client_endpoint"]
    ap.add_argument("--connect", default=endpoint.value() or default, metavar="E",
                    help=f"the router's client endpoint [env {endpoint.var}; default: {default}]")
    ap.add_argument("--timeout", type=float, default=DEFAULT_REPLY_TIMEOUT, metavar="S",
                    help="exit with status 1 when requests wait this many seconds without any "
                         "reply; longer than the node's own deadline (5 s by default), which "
                         f"answers a slow request with error 0 [default: {DEFAULT_REPLY_TIMEOUT:g}]")
    ap.add_argument("--connect-timeout", type=float, default=reach.DEFAULT_CONNECT_TIMEOUT,
                    metavar="S",
                    help="exit with status 1 when no node shows itself at the endpoint within "
                         f"this many seconds [default: {reach.DEFAULT_CONNECT_TIMEOUT:g}]")
    args = ap.parse_args(argv)
    for flag in ("--timeout", "--connect-timeout"):
        bad = reach.check_seconds(getattr(args, flag[2:].replace("-", "_")), flag)
        if bad:
            ap.error(bad)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    client = Client(args.connect)
    try:
        return client.run(args.timeout, args.connect_timeout)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
