"""A batch of commands decided together and committed in one transaction (group commit).

Decisions later in a batch see the events and claims of earlier ones: the
batch keeps them as an overlay over the store until the commit.
"""
from __future__ import annotations

from typing import Any, Callable

from common.timefmt import now_utc
from write_side.aggregate import Aggregate, Rejected
from write_side.store import Commit, EventStore, NewEvent, Stored

AggregateCache = dict  # (context, stream_id) -> Aggregate


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

    def owner(self, kind: str, value: str) -> str | None:
        """The stream holding a unique value, counting this batch's earlier commands."""
        return self._batch.owner(self.context, kind, value)

    def emit(self, aggregate: Aggregate, type_: str, data: dict) -> None:
        self.emitted.append((aggregate, type_, data))


class Batch:
    def __init__(self, store: EventStore, cache: AggregateCache, not_before: str = "") -> None:
        self._store = store
        self._cache = cache
        self._claims: dict[tuple[str, str, str], str | None] = {}
        self._commit = Commit(events=[], commands=[], claims=[], releases=[])
        # One instant for the whole batch, and time never runs backwards in the store.
        self.recorded_at = max(now_utc(), not_before)

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
        agg = self._cache.get(key)
        if agg is None:
            agg = factory(stream_id)
            for ev in self._store.load_stream(context, stream_id):
                agg.apply(ev["type"], ev["data"], ev["recorded_at"])
            self._cache[key] = agg
        return agg

    def new(self, context: str, stream_id: str, factory: Callable[[str], Aggregate]) -> Aggregate:
        agg = self._cache[(context, stream_id)] = factory(stream_id)
        return agg

    def owner(self, context: str, kind: str, value: str) -> str | None:
        key = (context, kind, value)
        if key in self._claims:
            return self._claims[key]
        return self._store.find_unique(context, kind, value)

    def decide(self, context: str, factory: Callable[[str], Aggregate],
               handler: Callable[..., Any], args: dict, expected: int | None) -> Any:
        """Run one handler; on success apply its events to the batch. Rejected propagates."""
        scope = Scope(self, context, factory)
        reply = handler(scope, args, expected)
        for aggregate, type_, data in scope.emitted:
            self.append(context, aggregate, type_, data, self.recorded_at)
        return reply

    def append(self, context: str, aggregate: Aggregate, type_: str, data: dict,
               recorded_at: str) -> None:
        """Apply an event to its aggregate and queue it, with the claims it changes."""
        before = aggregate.claims()
        aggregate.apply(type_, data, recorded_at)
        after = aggregate.claims()
        for kind, value in before - after:
            self._claims[(context, kind, value)] = None
            self._commit.releases.append((context, kind, value))
        for kind, value in after - before:
            self._claims[(context, kind, value)] = aggregate.id
            self._commit.claims.append((context, kind, value, aggregate.id))
        self._commit.events.append(NewEvent(context, aggregate.id, aggregate.version, type_,
                                            data, recorded_at))

    def record_command(self, command_id: str, result: Any) -> None:
        self._commit.commands.append((command_id, result, self.position))

    def commit(self) -> list[Stored]:
        return self._store.commit(self._commit)


__all__ = ["Batch", "Scope", "Rejected"]
