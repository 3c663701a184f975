"""What every engine does the same way, so an engine module holds only its storage code.

  - the stored form of an event: its map (PROTOCOL.md section 8), built and packed once,
    and the checksum of those bytes (common.checksum), checked on every read;
  - router-made command ids (`n:<boot>:<seq>`) kept as one row per batch and router;
  - the claims, kept in memory;
  - the read methods that follow from the engine's own (one stream, one command id,
    unpacked events, command ids of both forms).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from common import wire
# One checksum for every engine and for the subscribers that read a store themselves:
# common.checksum (re-exported here for the engines).
from common.checksum import checksum, checksum_bytes  # noqa: F401
from common.command_ids import router_parts, split
from common.ids import new_uuid
from write_side.store import Commit, NewEvent, Stored, StoreCorrupt

# (context, kind, value): what a claim is about
ClaimKey = tuple[str, str, str]


def event_map(position: int, ev: NewEvent) -> dict:
    """An event's map, with its keys in PROTOCOL.md's order (the packed bytes keep it)."""
    return {"position": position, "context": ev.context, "stream_id": ev.stream_id,
            "version": ev.version, "type": ev.type, "data": ev.data,
            "recorded_at": ev.recorded_at, "event_id": new_uuid()}


def stamp(head: int, events: list[NewEvent]) -> list[Stored]:
    """The events of a commit as they will be stored: positions from head + 1 on, each
    map packed once (the engine stores those bytes; publishing sends them as they are)."""
    stored = []
    for position, ev in enumerate(events, start=head + 1):
        event = event_map(position, ev)
        stored.append(Stored(event, wire.pack(event)))
    return stored


def mismatch(where: str, position: int) -> StoreCorrupt:
    """The error for an event whose stored bytes no longer match their checksum."""
    return StoreCorrupt(f"event store {where} is corrupt: the event at position {position} "
                        "does not match its checksum (its stored bytes were changed)")


def events_by_stream(rows: Iterable[tuple[int, str, bytes, Any]], context: str, where: str,
                     intact: Callable[[bytes, Any], bool]) -> dict[str, list[dict]]:
    """{stream_id: its events} from rows (position, stream_id, body, stored checksum) in
    stream and version order, each checked first: `intact(body, stored)` (each engine stores
    the checksum its own way), and that the columns the row was found by are its body's
    own: a changed column would hand the event to another stream, and no checksum of the
    body can tell."""
    found: dict[str, list[dict]] = {}
    unpack = wire.unpack  # once per call, not per event
    for position, sid, body, stored_sum in rows:
        if not intact(body, stored_sum):
            raise mismatch(where, position)
        event = unpack(body)
        if (event["stream_id"], event["context"], event["position"]) != (sid, context,
                                                                         position):
            raise StoreCorrupt(f"event store {where} is corrupt: the event at position "
                               f"{position} is filed under another stream or position "
                               "than its stored bytes name")
        found.setdefault(sid, []).append(event)
    return found


def named_rows(commands: list[tuple[str, Any, int]]) -> list[tuple[str, bytes, int]]:
    """(command_id, packed result, position) of each command whose id a client named."""
    return [(cid, wire.pack(result), position) for cid, result, position in commands
            if router_parts(cid) is None]


def batch_rows(commands: list[tuple[str, Any, int]]) -> list[tuple[str, int, int, bytes]]:
    """Router-made ids grouped into one row per router: (boot, seq_from, seq_to, packed
    [[seq, result, position], ...]). They are looked up only when a router re-sends after
    a write side restart, so one packed row per batch costs far less than a row each."""
    by_router: dict[str, list[list]] = {}
    for cid, result, position in commands:
        parts = router_parts(cid)
        if parts is not None:
            by_router.setdefault(parts[0], []).append([parts[1], result, position])
    return [(boot, min(r[0] for r in results), max(r[0] for r in results), wire.pack(results))
            for boot, results in by_router.items()]


def results_in_batch(packed: bytes, seqs: dict[int, str]) -> dict[str, tuple[Any, int]]:
    """From one batch row's packed results, those of the asked seqs ({seq: command id})."""
    found = {}
    for seq, result, position in wire.unpack(packed):
        if seq in seqs:
            found[seqs[seq]] = (result, position)
    return found


class Claims:
    """Every claim in memory: they are few and hot (every registration asks), so an
    engine loads them once at open and keeps them in step after each commit."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        self._claims: dict[ClaimKey, str] = {(c, k, v): sid for c, k, v, sid in rows}

    def claim_owner(self, context: str, kind: str, value: str) -> str | None:
        return self._claims.get((context, kind, value))

    def committed(self, batch: Commit) -> None:
        """Take in a batch's claims and releases, once the batch is stored."""
        for key in batch.releases:
            self._claims.pop(key, None)
        for context, kind, value, stream_id in batch.claims:
            self._claims[(context, kind, value)] = stream_id


class StoreBase:
    """The read methods that follow from an engine's own. An engine defines head,
    load_streams, bodies_after, and the two lookups of command results (_named_results,
    _batch_rows), and calls _committed after each commit."""

    # The last event's recorded_at once known (None: not read yet). Kept, since the write
    # side asks for it before every batch, and only a commit of this store changes it.
    _last_time: str | None = None

    @property
    def head(self) -> int:
        raise NotImplementedError

    def load_streams(self, context: str, stream_ids: list[str]) -> dict[str, list[dict]]:
        raise NotImplementedError

    def bodies_after(self, position: int, limit: int) -> list[bytes]:
        raise NotImplementedError

    def _named_results(self, command_ids: list[str]) -> dict[str, tuple[Any, int]]:
        """(result, position) of each of these client-named ids that is stored."""
        raise NotImplementedError

    def _batch_rows(self, boot: str, seq_min: int, seq_max: int) -> Iterable[bytes]:
        """The packed results of this router's batch rows whose seq range overlaps
        [seq_min, seq_max]."""
        raise NotImplementedError

    def load_stream(self, context: str, stream_id: str) -> list[dict]:
        return self.load_streams(context, [stream_id]).get(stream_id, [])

    def read_after(self, position: int, limit: int) -> list[dict]:
        return [wire.unpack(body) for body in self.bodies_after(position, limit)]

    def last_recorded_at(self) -> str:
        if self._last_time is None:
            last = self.read_after(self.head - 1, 1) if self.head else []
            self._last_time = last[0]["recorded_at"] if last else ""
        return self._last_time

    def stale_streams(self) -> set[tuple[str, str]]:
        return set()  # one writer: nothing changes behind this store's back

    def _committed(self, stored: list[Stored]) -> None:
        if stored:
            self._last_time = stored[-1].event["recorded_at"]

    def find_command(self, command_id: str) -> tuple[Any, int] | None:
        return self.find_commands([command_id]).get(command_id)

    def find_commands(self, command_ids: list[str]) -> dict[str, tuple[Any, int]]:
        named, by_router = split(command_ids)
        found = self._named_results(named)
        for boot, seqs in by_router.items():
            # Usually no row matches: a router's new commands have seqs above every
            # stored one, and only a router re-sending after a restart asks for old ones.
            for packed in self._batch_rows(boot, min(seqs), max(seqs)):
                found.update(results_in_batch(packed, seqs))
        return found
