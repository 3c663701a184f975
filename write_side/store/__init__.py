"""The event store: the single source of truth, behind one interface.

The write side, its catch-up server and the tests talk to an `EventStore`; which engine
stands behind it is chosen once, from a store URL (common.store_url), by `open_store`.
An engine is one module of this package (write_side/store/<scheme>.py) built on the
code every engine shares (write_side/store/shared.py); nothing outside this package
knows which engine it talks to.

What every engine keeps (tests/unit/test_store_contract.py holds every engine to it):
  - every event at a gap-free global position, in commit order, as its map
    (PROTOCOL.md section 8) packed once at commit, so publishing and catch-up send
    stored bytes as they are;
  - at most one event per (context, stream_id, version): a batch that breaks this
    stores nothing;
  - the result of every executed command id, written with its events;
  - the claims: values (e.g. an email) held by one stream, for set-wide invariants;
  - a format stamp, so a store written in another layout is refused with a message;
  - a checksum of every event's stored bytes, checked on every read: damage is raised as
    StoreCorrupt, never served (docs/storage.md).

A store that several write sides share (PostgreSQL) also keeps its promises between
them: a batch decided on what another write side has since changed is refused at commit
as a StoreConflict (nothing stored), and the write side decides it again on fresh state
(write_side.decider); `stale_streams` tells it which of its cached aggregates another
write side changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

from common.store_url import StoreURL, parse


class StoreError(Exception):
    """The store cannot be used: unwritable, locked, full, or not a store this node reads."""


class StoreConflict(StoreError):
    """Another write side changed what this batch was decided on (a stream it read, a claim
    it looked up, a command id it was to run) before the batch could commit: nothing of
    it is stored, and deciding it again on fresh state may well succeed."""


class StoreOutcomeUnknown(StoreError):
    """The connection to the store was lost while it committed: the batch may or may not
    be stored. Its commands are answered with error 0 (outcome unknown); a client that
    sends one again with its command id gets the stored result if there is one."""


class StoreCorrupt(BaseException):
    """The store's contents are damaged: an event's stored bytes no longer match their
    checksum, or the engine found its own structures broken. Nothing read from it can be
    trusted, so the write side stops the node (write_side.loop.main).

    A BaseException, like SystemExit, and not a StoreError: between the store and the
    loop stand handlers that turn a StoreError into a failed batch and any Exception from
    a command into one error reply (write_side.decider), and a damaged store must get
    through both, not cost one reply and let the node go on."""


@dataclass
class NewEvent:
    """An event decided but not yet stored."""
    context: str
    stream_id: str
    version: int
    type: str
    data: dict
    recorded_at: str


@dataclass
class Commit:
    """Everything one batch writes, in one transaction."""
    events: list[NewEvent]
    commands: list[tuple[str, Any, int]]          # (command_id, result, position)
    claims: list[tuple[str, str, str, str]]       # (context, kind, value, stream_id)
    releases: list[tuple[str, str, str]]          # (context, kind, value)
    # Every stream the batch's decisions read, written or not: a store shared by several
    # write sides refuses the batch (StoreConflict) if another one changed any since.
    reads: list[tuple[str, str]] = field(default_factory=list)  # (context, stream_id)


@dataclass
class Stored:
    """An event as stored: its map (PROTOCOL.md section 8) and that map packed."""
    event: dict
    body: bytes


class EventStore(Protocol):
    """What the write side needs from a store. Every method may raise StoreError, and
    every method that reads events or results may raise StoreCorrupt."""

    @property
    def head(self) -> int:
        """The position of the last stored event (0 for an empty store)."""

    def close(self) -> None: ...

    def load_stream(self, context: str, stream_id: str) -> list[dict]:
        """One stream's events in version order."""

    def load_streams(self, context: str, stream_ids: list[str]) -> dict[str, list[dict]]:
        """Many streams of one context: {stream_id: its events in version order}; streams
        with no event are left out."""

    def read_after(self, position: int, limit: int) -> list[dict]:
        """At most `limit` events after `position`, in position order."""

    def bodies_after(self, position: int, limit: int) -> list[bytes]:
        """The same as read_after, packed: bytes ready for the wire."""

    def last_recorded_at(self) -> str:
        """The recorded_at of the last stored event ("" for an empty store): where the
        write side's clock starts, so that time never runs backwards in the store."""

    def find_command(self, command_id: str) -> tuple[Any, int] | None:
        """(result, position) of a command executed before, else None."""

    def find_commands(self, command_ids: list[str]) -> dict[str, tuple[Any, int]]:
        """(result, position) of each of these ids that was executed before."""

    def claim_owner(self, context: str, kind: str, value: str) -> str | None:
        """The stream holding the claim on `value` (of this kind, in this context), if any."""

    def commit(self, batch: Commit) -> list[Stored]:
        """Store a batch atomically (all of it or none); its events as stored, with their
        positions. A batch's positions are those it was decided with (head + 1 on) where
        only this write side writes; on a shared store they may lie further on, and every
        position in the batch (its events', its command results') moves by the same
        amount: `head` after the commit says where the batch ended."""

    def stale_streams(self) -> set[tuple[str, str]]:
        """The (context, stream_id) of every stream another write side changed since the
        last call: their cached aggregates are stale. Called as each batch starts deciding
        (an engine with one writer returns nothing)."""


def open_store(url: str | StoreURL, sync: str = "full", max_pages: int = 0,
               read_only: bool = False) -> EventStore:
    """Open the store a URL names, with the engine of its scheme; a new store is made only
    where there is none (never over an empty or unknown file).

    sync: 'full' (each commit durable before it returns) or 'normal' (faster; an engine
    may lose its last commits on power loss, never on a process crash).
    max_pages > 0 caps the store's size, so a test can provoke a full disk.
    read_only: open an existing store to read it while its write side runs (tests and
    tools); nothing is created and commit fails.
    A URL that names no known engine raises ValueError; a store that cannot be opened,
    StoreError; a damaged one, StoreCorrupt."""
    where = parse(url) if isinstance(url, str) else url
    # Engines are imported here, when chosen, so an engine's driver is loaded only by
    # the nodes that use it.
    if where.scheme == "sqlite":
        from write_side.store.sqlite import SQLiteStore
        return SQLiteStore(where.path, sync, max_pages=max_pages, read_only=read_only)
    if where.scheme == "postgresql":
        # max_pages has no meaning there: a test provokes a full disk on SQLite only.
        from write_side.store.postgres import PostgresStore
        return PostgresStore(where, sync, read_only=read_only)
    raise ValueError(f"no engine for store URL scheme {where.scheme!r}")


def local_folder(url: str | StoreURL) -> str | None:
    """The folder on this host that holds the store's files (where the write side's lock
    lives), or None for a store that has none: in memory, or in a database server, which
    arbitrates between its writers itself (--data-dir then holds only the read sides'
    snapshots)."""
    where = parse(url) if isinstance(url, str) else url
    if where.scheme == "sqlite":
        from write_side.store.sqlite import folder_of
        return folder_of(where.path)
    return None


def read_events(url: str | StoreURL) -> list[dict]:
    """Every event of the store at `url`, in position order, for tools and tests: opened
    read-only, so the store's running write side is not disturbed."""
    store = open_store(url, read_only=True)
    try:
        return list(all_events(store))
    finally:
        store.close()


def all_events(store: EventStore, chunk: int = 10_000) -> Iterable[dict]:
    """Every stored event in position order, read in chunks."""
    position = 0
    while True:
        events = store.read_after(position, chunk)
        if not events:
            return
        yield from events
        position = events[-1]["position"]
