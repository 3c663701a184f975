"""Replay one stream from the store, for the stream browser, when the monitor does not hold
it whole (monitor.streams).

Stored events are read where a read side reads them (common.catchup_sources: the write
side's catch-up endpoint, or a database every process reads), and that serves positions,
not streams: this reads the store from the start in chunks and keeps the events of one
stream. Its cost grows with the store, so there is one scan at a time, with a deadline.
It runs on the HTTP thread that asked, on a source of its own (a ZeroMQ socket belongs to
one thread), closed when it ends.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from common.catchup_sources import CatchupSource

SCAN_DEADLINE = 30.0  # seconds a whole scan may take
# Seconds one chunk may take before it is asked again (a source drops a request it waited
# for in vain); also how soon a scan notices that the monitor is stopping.
ANSWER_WITHIN = 2.0
_one_at_a_time = threading.Lock()
# Set when the monitor stops: a scan closes its source at once, so the ZeroMQ context can
# end (it waits for every socket to be closed, and the socket is the HTTP thread's to close).
_stopping = threading.Event()


class ScanFailed(Exception):
    """The store could not be read in time (the write side is down or busy)."""


def stop_scans() -> None:
    _stopping.set()


def scan_stream(new_source: Callable[[], CatchupSource], context: str, stream_id: str,
                deadline: float = SCAN_DEADLINE) -> list[dict]:
    """Every stored event of the stream (context, stream_id), in order."""
    if not _one_at_a_time.acquire(timeout=deadline):
        raise ScanFailed("another stream is being read from the store")
    try:
        source = new_source()
        try:
            return _scan(source, context, stream_id, time.monotonic() + deadline)
        finally:
            source.close()
    finally:
        _one_at_a_time.release()


def _scan(source: CatchupSource, context: str, stream_id: str, deadline: float) -> list[dict]:
    found: list[dict] = []
    after = 0
    while True:
        ticket = source.ask(after)
        page = None
        while page is None:
            if _stopping.is_set():
                raise ScanFailed("the monitor is stopping")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ScanFailed(f"the store did not answer within {SCAN_DEADLINE:g} s")
            page = source.wait(ticket, min(left, ANSWER_WITHIN))
            if page is None:  # a source abandons what it was asked after a silence
                ticket = source.ask(after)
        found += [e for e in page.events
                  if e["stream_id"] == stream_id and e["context"] == context]
        if not page.events or page.events[-1]["position"] >= page.head:
            return found
        after = page.events[-1]["position"]
