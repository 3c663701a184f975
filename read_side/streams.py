"""Per-stream histories with the current state, and the state as of any position or time.

Each stream keeps its events in order; since positions and canonical
timestamps both grow along a stream, a past state is found by bisection and
a fold of that prefix, never by rescanning the whole log.

Pages of visible streams (ListUsers) as of any position are found without
visiting every stream: the streams are kept in creation order with the
position of their first event (those created after a position are a suffix,
cut by bisection), and each block of BLOCK consecutive streams records every
change of its count of visible streams, by position. Whole blocks before the
wanted page are skipped by their count as of the position; only the streams of
the page itself (plus at most one block) are folded.
"""
from __future__ import annotations

import sys
from bisect import bisect_left, bisect_right
from typing import Any, Callable

# (position, recorded_at, version, type, data)
Entry = tuple[int, str, int, str, dict]
Evolve = Callable[[Any, str, dict], Any]
Visible = Callable[[Any], bool]

# Streams per block of the page index. A page costs about (streams before it) / BLOCK
# bisections plus up to BLOCK + limit folds; 256 also keeps every running count a cached
# small int, so a count costs its list slot only.
BLOCK = 256


class StreamTable:
    def __init__(self, evolve: Evolve, visible: Visible, block: int = BLOCK) -> None:
        """`visible(state)` says whether a state is listed (and found); it must be False
        for None, the state before a stream's first event."""
        self.evolve = evolve
        self.visible = visible
        self.block = block
        self.history: dict[str, list[Entry]] = {}
        self.current: dict[str, Any] = {}  # insertion order is creation order
        self.last_position = 0
        self.order: list[str] = []  # stream ids in creation order (their first event)
        self.born: list[int] = []  # the position of each one's first event: increasing
        # Per block of `block` streams of `order`: the positions where its count of visible
        # streams changed (increasing), and the count from each of them on.
        self.changed_at: list[list[int]] = []
        self.counts: list[list[int]] = []

    def apply(self, event: dict) -> None:
        sid = event["stream_id"]
        position = event["position"]
        # Interned: a batch shares one timestamp and there are few event types, but each
        # unpacked event brings its own copies of both.
        entry = (position, sys.intern(event["recorded_at"]), event["version"],
                 sys.intern(event["type"]), event["data"])
        entries = self.history.get(sid)
        if entries is None:
            entries = self.history[sid] = []
            index = len(self.order)
            self.order.append(sid)
            self.born.append(position)
            if index % self.block == 0:
                self.changed_at.append([])
                self.counts.append([])
            before = None
        else:
            index = -1  # looked up only if its visibility changes, which is rare
            before = self.current[sid]
        entries.append(entry)
        after = self.current[sid] = self.evolve(before, entry[3], entry[4])
        self.last_position = position
        now = self.visible(after)
        if now != self.visible(before):
            if index < 0:  # its place in creation order, found by its first event's position
                index = bisect_left(self.born, entries[0][0])
            self._count_change(index // self.block, position, 1 if now else -1)

    def _count_change(self, block: int, position: int, delta: int) -> None:
        counts = self.counts[block]
        self.changed_at[block].append(position)
        counts.append((counts[-1] if counts else 0) + delta)

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

    def visible_count(self, block: int, at: int | None = None) -> int:
        """How many streams of this block are visible as of `at`."""
        counts = self.counts[block]
        if at is None or at >= self.last_position:
            return counts[-1] if counts else 0
        known = bisect_right(self.changed_at[block], at)
        return counts[known - 1] if known else 0

    def visible_page(self, offset: int, limit: int,
                     at: int | None = None) -> list[tuple[str, Any]]:
        """(stream_id, state) of the visible streams as of `at`, in creation order, from
        the `offset`-th (from 0), at most `limit` of them."""
        if at is None or at >= self.last_position:
            at, existing = None, len(self.order)
        else:
            existing = bisect_right(self.born, at)  # those created later are a suffix
        start = 0
        for block in range(len(self.counts)):
            if start >= existing:
                break
            count = self.visible_count(block, at)
            if count > offset:
                break
            offset -= count
            start += self.block
        page: list[tuple[str, Any]] = []
        for index in range(start, existing):
            sid = self.order[index]
            state = self.state(sid, at)
            if not self.visible(state):
                continue
            if offset:
                offset -= 1
                continue
            page.append((sid, state))
            if len(page) == limit:
                break
        return page
