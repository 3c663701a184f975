"""Replay one stream from the store through the write side's catch-up endpoint.

For the stream browser, when the monitor does not hold a stream whole (monitor.streams).
The catch-up protocol serves positions, not streams, so this reads the store from the
start in chunks and keeps the events of one stream: its cost grows with the store, so
there is one scan at a time, with a deadline. It runs on the HTTP thread that asked, on a
socket of its own (ZeroMQ sockets are not shared between threads).
"""
from __future__ import annotations

import itertools
import threading
import time

import zmq

from common import wire

SCAN_DEADLINE = 30.0  # seconds a whole scan may take
WAKE_EVERY = 0.1  # seconds: how soon a scan notices that the monitor is stopping
_one_at_a_time = threading.Lock()
# Set when the monitor stops: a scan closes its socket at once, so the ZeroMQ context can
# end (it waits for every socket to be closed, and the socket is the HTTP thread's to close).
_stopping = threading.Event()
_requests = itertools.count(1)


class ScanFailed(Exception):
    """The store could not be read in time (the write side is down or busy)."""


def stop_scans() -> None:
    _stopping.set()


def scan_stream(ctx: zmq.Context, endpoint: str, context: str, stream_id: str,
                secure=None, deadline: float = SCAN_DEADLINE) -> list[dict]:
    """Every stored event of the stream (context, stream_id), in order."""
    if not _one_at_a_time.acquire(timeout=deadline):
        raise ScanFailed("another stream is being read from the store")
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        if secure is not None:
            secure.client(sock)
        sock.connect(endpoint)
        return _scan(sock, context, stream_id, time.monotonic() + deadline)
    finally:
        sock.close()
        _one_at_a_time.release()


def _scan(sock: zmq.Socket, context: str, stream_id: str, deadline: float) -> list[dict]:
    found: list[dict] = []
    after = 0
    while True:
        req = next(_requests)
        sock.send(wire.catchup_request(req, after))
        reply = _reply(sock, req, deadline)
        found += [e for e in reply.events
                  if e["stream_id"] == stream_id and e["context"] == context]
        if not reply.events or reply.events[-1]["position"] >= reply.head:
            return found
        after = reply.events[-1]["position"]


def _reply(sock: zmq.Socket, req: int, deadline: float) -> wire.CatchupReply:
    while (left := deadline - time.monotonic()) > 0:
        if _stopping.is_set():
            raise ScanFailed("the monitor is stopping")
        if not sock.poll(int(min(left, WAKE_EVERY) * 1000) + 1):
            continue
        try:
            reply = wire.catchup_reply_body(wire.frames(sock.recv_multipart(), 1,
                                                        "a catch-up reply")[0])
        except wire.BadFrame:
            continue  # counted nowhere: the subscription's own socket counts what it drops
        if reply.req == req:
            return reply
    raise ScanFailed("the store did not answer in time")
