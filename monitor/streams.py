"""The streams the monitor holds, for the stream browser: bounded, most recently changed first.

The monitor follows every event, but keeps only the latest streams (MAX_STREAMS), at most
MAX_EVENTS events over all of them and MAX_PER_STREAM per stream: memory stays bounded
whatever the store's size. A stream whose first event was not seen (it was evicted, or
grew past MAX_PER_STREAM) is marked incomplete; the browser then replays it from the store
(monitor.scan) before showing it.

A stream's state at a time is a generic fold, since the monitor imports no context's code:
the payloads of its events recorded at or before that time, merged in order (a later
event's keys win), with the version and type of the last of them.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

MAX_STREAMS = 10_000
MAX_EVENTS = 50_000
MAX_PER_STREAM = 1_000
StreamKey = tuple[str, str]  # (context, stream_id)


def brief(event: dict) -> dict:
    """What the page shows of an event (its id is left out: nobody reads it)."""
    return {"position": event["position"], "context": event["context"],
            "stream_id": event["stream_id"], "version": event["version"],
            "type": event["type"], "recorded_at": event["recorded_at"], "data": event["data"]}


@dataclass
class Held:
    events: list[dict] = field(default_factory=list)  # brief() of each, in version order
    complete: bool = True  # holds every event of the stream from version 1


class StreamHistories:
    def __init__(self, max_streams: int = MAX_STREAMS, max_events: int = MAX_EVENTS,
                 max_per_stream: int = MAX_PER_STREAM) -> None:
        self.max_streams = max_streams
        self.max_events = max_events
        self.max_per_stream = max_per_stream
        self._held: OrderedDict[StreamKey, Held] = OrderedDict()  # least recent first
        self._count = 0

    def __len__(self) -> int:
        return len(self._held)

    @property
    def event_count(self) -> int:
        return self._count

    def add(self, event: dict) -> None:
        key = (event["context"], event["stream_id"])
        held = self._held.pop(key, None)
        version = event["version"]
        if held is None:
            held = Held(complete=version == 1)
        elif held.events and version != held.events[-1]["version"] + 1:
            held.complete = False  # a version was missed: only a replay can say what it was
        held.events.append(brief(event))
        self._count += 1
        if len(held.events) > self.max_per_stream:
            held.events.pop(0)
            held.complete = False
            self._count -= 1
        self._held[key] = held
        self._evict()

    def replace(self, key: StreamKey, events: Iterable[dict]) -> None:
        """The whole stream, replayed from the store: held as complete (its latest
        MAX_PER_STREAM events only, when it is longer)."""
        old = self._held.pop(key, None)
        if old is not None:
            self._count -= len(old.events)
        kept = [brief(e) for e in events][-self.max_per_stream:]
        held = Held(kept, complete=not kept or kept[0]["version"] == 1)
        self._held[key] = held
        self._count += len(kept)
        self._evict()

    def _evict(self) -> None:
        while self._held and (len(self._held) > self.max_streams
                              or self._count > self.max_events):
            _key, gone = self._held.popitem(last=False)
            self._count -= len(gone.events)

    def get(self, key: StreamKey) -> Held | None:
        held = self._held.get(key)
        return None if held is None else Held(list(held.events), held.complete)

    def recent(self, context: str = "", prefix: str = "", limit: int = 50) -> list[dict]:
        """The most recently changed streams, newest first, optionally of one context and
        whose id starts with `prefix`."""
        out = []
        for (ctx, stream_id), held in reversed(self._held.items()):
            if (context and ctx != context) or not stream_id.startswith(prefix):
                continue
            last = held.events[-1]
            out.append({"context": ctx, "stream_id": stream_id, "version": last["version"],
                        "type": last["type"], "recorded_at": last["recorded_at"]})
            if len(out) >= limit:
                break
        return out


def state_at(events: list[dict], at: str) -> dict | None:
    """The stream's state from its events recorded at or before `at` (canonical timestamps
    compare as text), or None when it had none then."""
    fields: dict = {}
    last = None
    for event in events:
        if event["recorded_at"] > at:
            break
        fields.update(event["data"])
        last = event
    if last is None:
        return None
    return {"version": last["version"], "last_event": last["type"],
            "updated_at": last["recorded_at"], "fields": fields}
