"""Turns a batch of command requests into results and one commit, with exactly-once ids."""
from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from write_side.aggregate import Rejected
from write_side.batch import AggregateCache, Batch, Unstorable
from write_side.store import EventStore, Stored, StoreError

log = logging.getLogger("write")


class Decider:
    def __init__(self, store: EventStore, contexts: dict[str, ModuleType]) -> None:
        self.store = store
        self.contexts = contexts
        self.cache = AggregateCache()
        self.last_time = ""

    def seed(self) -> list[Stored]:
        """Write every context's sample events, through the normal append path, into an empty store."""
        if self.store.head:
            return []
        batch = Batch(self.store, self.cache)
        for name, module in self.contexts.items():
            for stream_id, type_, data, recorded_at in module.SAMPLE:
                agg = batch.load(name, stream_id, module.AGGREGATE)
                batch.append(name, agg, type_, data, recorded_at)
        return self._commit(batch)

    def run(self, requests: list[list]) -> tuple[list[list], list[Stored]]:
        """Decide a batch: returns ([[seq, result, position], ...], stored events)."""
        batch = Batch(self.store, self.cache, self.last_time)
        self.last_time = batch.recorded_at
        outcomes: list[list] = []
        seen = self.store.find_commands([r[4] for r in requests])
        self._prefetch(batch, requests)
        for seq, context, name, args, command_id, expected in requests:
            known = seen.get(command_id)
            if known is not None:
                outcomes.append([seq, known[0], known[1]])
                continue
            result = self._decide(batch, context, name, args, expected)
            if "error" not in result:  # a crash is not a result: a retry may run again
                batch.record_command(command_id, result)
                seen[command_id] = (result, batch.position)
            outcomes.append([seq, result, batch.position])
        if batch.empty:
            return outcomes, []
        try:
            return outcomes, self._commit(batch)
        except StoreError as exc:
            log.error("batch of %d commands not stored: %s", len(requests), exc)
            failure = {"error": [11, f"temporarily unavailable: event store: {exc}"]}
            return [[o[0], failure, self.store.head] for o in outcomes], []

    def _prefetch(self, batch: Batch, requests: list[list]) -> None:
        """Load at once every existing stream the batch's commands name (a context says
        which through its optional `stream_ids(name, args)`)."""
        named: dict[str, list[str]] = {}
        for _, context, name, args, _, _ in requests:
            module = self.contexts.get(context)
            pick = getattr(module, "stream_ids", None)
            if pick is not None:
                named.setdefault(context, []).extend(pick(name, args))
        for context, stream_ids in named.items():
            batch.prefetch(context, stream_ids, self.contexts[context].AGGREGATE)

    def _decide(self, batch: Batch, context: str, name: str, args: Any,
                expected: int | None) -> dict:
        module = self.contexts.get(context)
        handler = module and module.COMMANDS.get(name)
        if handler is None:
            return {"error": [10, f"not supported: unknown command {name}"]}
        try:
            events = batch.decide(context, module.AGGREGATE, handler, args, expected)
            return {"success": True, "events": events}
        except Rejected as rejected:
            return {"success": False, "errors": rejected.errors}
        except Unstorable:
            return {"error": [12, "malformed request: a value is out of range"]}
        except Exception:  # a bug must cost one reply, never the process
            log.exception("command %s.%s crashed", context, name)
            return {"error": [13, f"crash: internal error in {name}"]}

    def _commit(self, batch: Batch) -> list[Stored]:
        try:
            return batch.commit()
        except StoreError:
            self.cache.clear()  # the cached aggregates hold the failed batch's events
            raise
