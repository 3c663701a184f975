"""Server-Sent Events: one message, encoded once, handed to every connected page.

Each page has a bounded queue. A page that does not keep up (its queue is full) is cut
off rather than allowed to grow the monitor's memory; its EventSource reconnects by itself
and starts again from a fresh snapshot. Nothing a page does (leaving, stalling) can block
the thread that publishes.
"""
from __future__ import annotations

import json
import queue
import threading

QUEUE_SIZE = 256  # messages waiting for one page: about four minutes of stats
CLOSE = ""  # queued to tell a page's handler to end the response


def message(name: str, data: object) -> str:
    """One SSE message: its event name and its data as one line of JSON."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pages: set[queue.Queue] = set()
        self.closed = False

    def subscribe(self) -> queue.Queue:
        page: queue.Queue = queue.Queue(QUEUE_SIZE)
        with self._lock:
            if self.closed:
                page.put_nowait(CLOSE)
            else:
                self._pages.add(page)
        return page

    def unsubscribe(self, page: queue.Queue) -> None:
        with self._lock:
            self._pages.discard(page)

    @property
    def pages(self) -> int:
        with self._lock:
            return len(self._pages)

    def publish(self, name: str, data: object) -> None:
        with self._lock:
            pages = list(self._pages)
        if not pages:
            return
        text = message(name, data)
        for page in pages:
            try:
                page.put_nowait(text)
            except queue.Full:
                self._cut_off(page)

    def _cut_off(self, page: queue.Queue) -> None:
        self.unsubscribe(page)
        try:
            while True:
                page.get_nowait()
        except queue.Empty:
            pass
        try:
            page.put_nowait(CLOSE)
        except queue.Full:  # a publish that raced the drain refilled it: cannot be 256 deep
            pass

    def close(self) -> None:
        """End every page's response (the monitor is stopping)."""
        with self._lock:
            self.closed = True
            pages, self._pages = list(self._pages), set()
        for page in pages:
            self._cut_off(page)
