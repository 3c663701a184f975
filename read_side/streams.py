"""Per-stream histories with the current state, and the state as of any position or time.

Each stream keeps its events in order; since positions and canonical
timestamps both grow along a stream, a past state is found by bisection and
a fold of that prefix, never by rescanning the whole log.
"""
from __future__ import annotations

import sys
from bisect import bisect_right
from typing import Any, Callable, Iterator

# (position, recorded_at, version, type, data)
Entry = tuple[int, str, int, str, dict]
Evolve = Callable[[Any, str, dict], Any]


class StreamTable:
    def __init__(self, evolve: Evolve) -> None:
        self.evolve = evolve
        self.history: dict[str, list[Entry]] = {}
        self.current: dict[str, Any] = {}  # insertion order is creation order
        self.last_position = 0

    def apply(self, event: dict) -> None:
        sid = event["stream_id"]
        # Interned: a batch shares one timestamp and there are few event types, but each
        # unpacked event brings its own copies of both.
        entry = (event["position"], sys.intern(event["recorded_at"]), event["version"],
                 sys.intern(event["type"]), event["data"])
        self.history.setdefault(sid, []).append(entry)
        self.current[sid] = self.evolve(self.current.get(sid), entry[3], entry[4])
        self.last_position = entry[0]

    def _fold(self, entries: list[Entry], count: int) -> Any:
        state = None
        for entry in entries[:count]:
            state = self.evolve(state, entry[3], entry[4])
        return state

    def state(self, stream_id: str, at: int | None = None) -> Any:
        """The stream's state once every event up to position `at` was applied."""
        entries = self.history.get(stream_id)
        if not entries:
            return None
        if at is None or entries[-1][0] <= at:
            return self.current[stream_id]
        return self._fold(entries, bisect_right(entries, at, key=lambda e: e[0]))

    def state_at_time(self, stream_id: str, moment: str, at: int | None = None) -> Any:
        """The state from events recorded at or before `moment` (canonical form)."""
        entries = self.history.get(stream_id, [])
        if at is not None:
            entries = entries[:bisect_right(entries, at, key=lambda e: e[0])]
        return self._fold(entries, bisect_right(entries, moment, key=lambda e: e[1]))

    def events(self, stream_id: str, at: int | None = None) -> list[Entry]:
        entries = self.history.get(stream_id, [])
        if at is not None and entries and entries[-1][0] > at:
            entries = entries[:bisect_right(entries, at, key=lambda e: e[0])]
        return entries

    def states(self, at: int | None = None) -> Iterator[tuple[str, Any]]:
        """(stream_id, state) of every stream, in creation order, as of `at`."""
        for sid in self.current:
            state = self.state(sid, at)
            if state is not None:
                yield sid, state
