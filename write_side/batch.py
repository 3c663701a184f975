"""A batch of commands decided together and committed in one transaction (group commit).

Decisions later in a batch see the events and claims of earlier ones: the
batch keeps them as an overlay over the store until the commit.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

from common import wire
from common.timefmt import after, now_utc
from write_side.aggregate import Aggregate, Rejected
from write_side.store import Commit, EventStore, NewEvent, Stored

Key = tuple[str, str]  # (context, stream_id)


class AggregateCache:
    """The most recently used aggregates, so hot streams skip the store. Bounded: a
    stream not used for a while is folded again from its events when next needed, so
    memory does not grow with the number of streams."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Key, Aggregate] = OrderedDict()

    def get(self, key: Key) -> Aggregate | None:
        agg = self._items.get(key)
        if agg is not None:
            self._items.move_to_end(key)
        return agg

    def put(self, key: Key, agg: Aggregate) -> None:
        self._items[key] = agg
        self._items.move_to_end(key)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def discard(self, key: Key) -> None:
        """Forget one aggregate (another write side changed its stream)."""
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class Unstorable(Exception):
    """A handler produced event data the wire format cannot carry (e.g. a 70-bit integer)."""


class Scope:
    """What one command handler may do: load aggregates, look up claims, emit events."""

    def __init__(self, batch: "Batch", context: str, factory: Callable[[str], Aggregate]) -> None:
        self._batch = batch
        self.context = context
        self._factory = factory
        self.emitted: list[tuple[Aggregate, str, dict]] = []

    def load(self, stream_id: str) -> Aggregate:
        return self._batch.load(self.context, stream_id, self._factory)

    def new(self, stream_id: str) -> Aggregate:
        """A stream the handler just named at random: nothing to read from the store."""
        return self._batch.new(self.context, stream_id, self._factory)

    def claim_owner(self, kind: str, value: str) -> str | None:
        """The stream holding the claim on a value, counting this batch's earlier commands."""
        return self._batch.claim_owner(self.context, kind, value)

    def emit(self, aggregate: Aggregate, type_: str, data: dict) -> None:
        self.emitted.append((aggregate, type_, data))


class Batch:
    def __init__(self, store: EventStore, cache: AggregateCache) -> None:
        self._store = store
        self._cache = cache
        # What this batch touched, held here until the commit: the cache may evict an
        # aggregate, and the store does not have this batch's events yet.
        self._touched: dict[Key, Aggregate] = {}
        self._claims: dict[tuple[str, str, str], str | None] = {}
        self._commit = Commit(events=[], commands=[], claims=[], releases=[])
        self.recorded_at = _stamp(now_utc(), store.last_recorded_at())

    @property
    def position(self) -> int:
        """The head as it will be once this batch is committed."""
        return self._store.head + len(self._commit.events)

    @property
    def empty(self) -> bool:
        c = self._commit
        return not (c.events or c.commands)

    def load(self, context: str, stream_id: str, factory: Callable[[str], Aggregate]) -> Aggregate:
        key = (context, stream_id)
        agg = self._touched.get(key) or self._cache.get(key)
        if agg is None:
            agg = _fold(factory(stream_id), self._store.load_stream(context, stream_id))
        self._remember(key, agg)
        return agg

    def prefetch(self, context: str, stream_ids: list[str],
                 factory: Callable[[str], Aggregate]) -> None:
        """Load in one go the streams that later commands of the batch will name: a
        query per batch instead of one per command (most of them for new streams)."""
        missing = list({sid for sid in stream_ids
                        if (context, sid) not in self._touched
                        and self._cache.get((context, sid)) is None})
        if not missing:
            return
        found = self._store.load_streams(context, missing)
        for sid in missing:
            self._remember((context, sid), _fold(factory(sid), found.get(sid, ())))

    def new(self, context: str, stream_id: str, factory: Callable[[str], Aggregate]) -> Aggregate:
        agg = factory(stream_id)
        self._remember((context, stream_id), agg)
        return agg

    def _remember(self, key: Key, agg: Aggregate) -> None:
        self._touched[key] = agg
        self._cache.put(key, agg)

    def claim_owner(self, context: str, kind: str, value: str) -> str | None:
        key = (context, kind, value)
        if key in self._claims:
            return self._claims[key]
        return self._store.claim_owner(context, kind, value)

    def decide(self, context: str, factory: Callable[[str], Aggregate],
               handler: Callable[..., Any], args: dict, expected: int | None) -> Any:
        """Run one handler; on success apply its events to the batch. Rejected propagates."""
        scope = Scope(self, context, factory)
        reply = handler(scope, args, expected)
        try:  # checked before anything is applied, so a bad value costs only its command
            wire.pack([data for _, _, data in scope.emitted])
        except wire.PACK_ERRORS as exc:
            raise Unstorable(str(exc)) from exc
        for aggregate, type_, data in scope.emitted:
            self.append(context, aggregate, type_, data, self.recorded_at)
        return reply

    def append(self, context: str, aggregate: Aggregate, type_: str, data: dict,
               recorded_at: str) -> None:
        """Apply an event to its aggregate and queue it, with the claims it changes."""
        before = aggregate.claims()
        aggregate.apply(type_, data, recorded_at)
        after = aggregate.claims()
        # The commit holds each claim's net change, which a store applies as releases
        # first, then claims: a claim made and given up within the batch (an email set,
        # then changed again) is dropped rather than released, or the store would keep it
        # (a release applied before the claim it undoes).
        for kind, value in before - after:
            key = (context, kind, value)
            self._claims[key] = None
            claimed_here = (context, kind, value, aggregate.id)
            if claimed_here in self._commit.claims:
                self._commit.claims.remove(claimed_here)
            else:
                self._commit.releases.append(key)
        for kind, value in after - before:
            self._claims[(context, kind, value)] = aggregate.id
            self._commit.claims.append((context, kind, value, aggregate.id))
        self._commit.events.append(NewEvent(context, aggregate.id, aggregate.version, type_,
                                            data, recorded_at))

    def record_command(self, command_id: str, result: Any) -> None:
        self._commit.commands.append((command_id, result, self.position))

    def commit(self) -> list[Stored]:
        # What the decisions read: a shared store refuses the batch if another write side
        # changed any of it meanwhile (write_side.store.StoreConflict).
        self._commit.reads = list(self._touched)
        return self._store.commit(self._commit)


def _stamp(now: str, last: str) -> str:
    """The time of a batch's events: one instant for the whole batch, later than every
    event before it. A clock that reads no later than the store's last event (set back,
    or one that ran a day ahead last time) stamps one microsecond after that event, until
    it has caught up: a stream's history never shows a version recorded before the one it
    follows. Both are canonical (common.timefmt), so text order is time order."""
    return now if now > last else after(last)


def _fold(agg: Aggregate, events) -> Aggregate:
    for ev in events:
        agg.apply(ev["type"], ev["data"], ev["recorded_at"])
    return agg


__all__ = ["Batch", "Scope", "Rejected", "Unstorable"]
