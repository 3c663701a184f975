"""Turns a batch of command requests into results and one commit, with exactly-once ids."""
from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from common import errors
from common.errors import CRASH, MALFORMED, NOT_SUPPORTED, TIMEOUT, UNAVAILABLE
from common.wire import CommandRequest, CommandResult
from write_side.aggregate import Rejected
from write_side.batch import AggregateCache, Batch, Unstorable
from write_side.store import (EventStore, Stored, StoreConflict, StoreError,
                              StoreOutcomeUnknown)

log = logging.getLogger("write")

# Times a batch is decided again after another write side changed what it read (a shared
# store: StoreConflict). Each attempt starts from what the store holds then, so a further
# conflict needs yet another write side's commit on the same streams or claims in between;
# past this many the batch fails with error 11, which a client may safely retry.
CONFLICT_RETRIES = 8


class Decider:
    def __init__(self, store: EventStore, contexts: dict[str, ModuleType]) -> None:
        self.store = store
        self.contexts = contexts
        self.cache = AggregateCache()

    def seed(self) -> list[Stored]:
        """Write every context's sample events, through the normal append path, into an empty store."""
        for _ in range(CONFLICT_RETRIES):
            self._forget_stale()
            if self.store.head:
                return []
            batch = Batch(self.store, self.cache)
            for name, module in self.contexts.items():
                for stream_id, type_, data, recorded_at in module.SAMPLE:
                    agg = batch.load(name, stream_id, module.AGGREGATE)
                    batch.append(name, agg, type_, data, recorded_at)
            try:
                return self._commit(batch)
            except StoreConflict:
                continue  # another write side seeded first: its head is now known here
        return []

    def run(self, requests: list[CommandRequest]) -> tuple[list[CommandResult], list[Stored]]:
        """Decide a batch: returns (a result for each request, the stored events)."""
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                return self._run(requests)
            except StoreError as exc:
                # The cached aggregates may hold the failed attempt's events, applied as
                # its commands were decided.
                self.cache.clear()
                failed: StoreError = exc
                if not isinstance(exc, StoreConflict):
                    break
                log.info("batch of %d commands decided again (attempt %d): %s",
                         len(requests), attempt + 1, exc)
        code = TIMEOUT if isinstance(failed, StoreOutcomeUnknown) else UNAVAILABLE
        log.error("batch of %d commands not stored: %s", len(requests), failed)
        failure = {"error": errors.pair(code, f"event store: {failed}")}
        return [CommandResult(r.seq, failure, self.store.head) for r in requests], []

    def _run(self, requests: list[CommandRequest]) -> tuple[list[CommandResult], list[Stored]]:
        """One attempt at a batch; StoreError (StoreConflict: decide it again) when the store
        could not be read or the commit failed."""
        self._forget_stale()
        batch = Batch(self.store, self.cache)  # its clock starts after the store's last event
        outcomes: list[CommandResult] = []
        seen = self.store.find_commands([r.command_id for r in requests])
        from_store = set(seen)  # ids whose position the store gave, not this batch
        self._prefetch(batch, requests)
        for r in requests:
            known = seen.get(r.command_id)
            if known is not None:
                outcomes.append(CommandResult(r.seq, *known))
                continue
            result = self._decide(batch, r.context, r.name, r.args, r.expected_version)
            if "error" not in result:  # a crash is not a result: a retry may run again
                batch.record_command(r.command_id, result)
                seen[r.command_id] = (result, batch.position)
            outcomes.append(CommandResult(r.seq, result, batch.position))
        if batch.empty:
            return outcomes, []
        planned = batch.position
        stored = self._commit(batch)
        # On a shared store the batch may have landed further on than planned (another write
        # side committed meanwhile): its positions all moved by the same amount.
        shift = self.store.head - planned
        if shift:
            outcomes = [o if requests[i].command_id in from_store else
                        CommandResult(o.seq, o.result, o.position + shift)
                        for i, o in enumerate(outcomes)]
        return outcomes, stored

    def _forget_stale(self) -> None:
        """Drop the cached aggregates of streams another write side changed."""
        for key in self.store.stale_streams():
            self.cache.discard(key)

    def _prefetch(self, batch: Batch, requests: list[CommandRequest]) -> None:
        """Load at once every existing stream the batch's commands name (a context says
        which through its optional `stream_ids(name, args)`)."""
        named: dict[str, list[str]] = {}
        for r in requests:
            module = self.contexts.get(r.context)
            pick = getattr(module, "stream_ids", None)
            if pick is not None:
                named.setdefault(r.context, []).extend(pick(r.name, r.args))
        for context, stream_ids in named.items():
            batch.prefetch(context, stream_ids, self.contexts[context].AGGREGATE)

    def _decide(self, batch: Batch, context: str, name: str, args: Any,
                expected: int | None) -> dict:
        module = self.contexts.get(context)
        handler = module and module.COMMANDS.get(name)
        if handler is None:
            return {"error": errors.pair(NOT_SUPPORTED, f"unknown command {name}")}
        try:
            events = batch.decide(context, module.AGGREGATE, handler, args, expected)
            return {"success": True, "events": events}
        except Rejected as rejected:
            return {"success": False, "errors": rejected.errors}
        except Unstorable:
            return {"error": errors.pair(MALFORMED, errors.OUT_OF_RANGE)}
        except StoreError:
            raise  # the store failed, not the command: the whole batch fails (run)
        except Exception:  # a bug must cost one reply, never the process
            log.exception("command %s.%s crashed", context, name)
            return {"error": errors.pair(CRASH, f"internal error in {name}")}

    def _commit(self, batch: Batch) -> list[Stored]:
        try:
            return batch.commit()
        except StoreError:
            self.cache.clear()  # the cached aggregates hold the failed batch's events
            raise
