"""cqrs-client: pipe stdin lines to a node in service mode and print its replies in order.

    cqrs-client --connect tcp://127.0.0.1:5550 < requests.jsonl

Each non-blank line goes out as one frame; each reply frame is printed as one
line, exactly as run_node.py would print it. Exits after the last reply once
stdin has ended (status 1 if the node stops answering for --timeout seconds).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

import zmq

from common import wire
from common.security import Curve

READ_CHUNK = 1 << 20


class Client:
    def __init__(self, endpoint: str, in_fd: int = 0, out_fd: int = 1) -> None:
        self.ctx = wire.context()
        self.secure = Curve(self.ctx)
        self.socket = self.ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 0)  # never drop a request: queue what must wait
        self.secure.client(self.socket)
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

    def run(self, timeout: float) -> int:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.in_fd, zmq.POLLIN)
        last_heard = time.monotonic()
        while not (self.eof and self.received >= self.sent):
            events = dict(poller.poll(100))
            if events.get(self.in_fd):
                chunk = os.read(self.in_fd, READ_CHUNK)
                self.eof = not chunk
                if self.eof:
                    poller.unregister(self.in_fd)
                self._send_lines(chunk)
            if self.socket in events:
                self._receive()
                last_heard = time.monotonic()
            elif self.received < self.sent and time.monotonic() - last_heard > timeout:
                sys.stderr.write(f"cqrs-client: no reply for {timeout:g} s; "
                                 f"{self.sent - self.received} requests unanswered\n")
                return 1
            elif self.received >= self.sent:
                last_heard = time.monotonic()
        return 0

    def close(self) -> None:
        self.socket.close()
        self.secure.close()
        self.ctx.term()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cqrs-client", description=__doc__.split("\n\n")[0])
    ap.add_argument("--connect", default=os.environ.get("CQRS_CLIENT_ENDPOINT",
                                                         "tcp://127.0.0.1:5550"),
                    help="the router's client endpoint [env CQRS_CLIENT_ENDPOINT]")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="give up after this many seconds without a reply")
    args = ap.parse_args(argv)
    client = Client(args.connect)
    try:
        return client.run(args.timeout)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
