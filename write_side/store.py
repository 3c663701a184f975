"""The event store: one SQLite file, the single source of truth.

Tables
  events    every event, at a gap-free global position; unique (context, stream, version).
            `body` is the event's wire form (PROTOCOL.md section 8) packed once at commit,
            so publishing and catch-up send stored bytes as they are; only the keys that
            are looked up have columns of their own.
  commands  every executed command id with its result, written with its events
  batches   the results of the commands the router named itself (ids `n:<boot>:<seq>`),
            one row per batch and router: they are looked up only when a router re-sends
            after a write side restart, so one packed row costs far less than a row each
  uniques   values claimed by a stream (e.g. an email), for set-wide invariants

The tables keyed by text are WITHOUT ROWID: one B-tree per table instead of two,
which is a fifth of the cost of a commit. `PRAGMA user_version` holds FORMAT, so
a store written in another layout is refused with a clear message.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable

from common import wire
from common.ids import new_uuid

FORMAT = 3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY,
    context     TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    body        BLOB NOT NULL,
    UNIQUE (context, stream_id, version)
);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    result     BLOB NOT NULL,
    position   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    boot     TEXT NOT NULL,
    seq_from INTEGER NOT NULL,
    seq_to   INTEGER NOT NULL,
    results  BLOB NOT NULL,        -- packed [[seq, result, position], ...]
    PRIMARY KEY (boot, seq_to)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uniques (
    context   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    PRIMARY KEY (context, kind, value)
) WITHOUT ROWID;
"""


class StoreError(Exception):
    """The store cannot be used: corrupt, unwritable, locked, or full."""


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


@dataclass
class Stored:
    """An event as stored: its map (PROTOCOL.md section 8) and that map packed."""
    event: dict
    body: bytes


_COLUMNS = "position, context, stream_id, version, body"


class EventStore:
    def __init__(self, path: str, sync: str = "full", max_pages: int = 0) -> None:
        """Open (or create) the store; max_pages > 0 caps its size (a test-only fault)."""
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 0")
            if path != ":memory:":
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"cannot use WAL mode on {path} (got {mode})")
            self._db.execute(f"PRAGMA synchronous = {'FULL' if sync == 'full' else 'NORMAL'}")
            self._create_or_check_format(path)
            if max_pages:
                self._db.execute(f"PRAGMA max_page_count = {int(max_pages)}")
            row = self._db.execute("SELECT MAX(position) FROM events").fetchone()
            # Claims are few and hot (every registration asks): kept in memory, loaded once.
            self._uniques = {(c, k, v): sid for c, k, v, sid in self._db.execute(
                "SELECT context, kind, value, stream_id FROM uniques")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open event store {path}: {exc}") from exc
        self._head = row[0] or 0

    def _create_or_check_format(self, path: str) -> None:
        """Create the tables and stamp FORMAT in one transaction (a process killed while
        creating a store leaves either nothing or a whole store), or check the stamp."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            found = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            if tables and found != FORMAT:
                raise StoreError(f"event store {path} has format {found}, this node reads "
                                 f"format {FORMAT}; export its events with the version that "
                                 "wrote it")
            if not tables:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {FORMAT}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @property
    def head(self) -> int:
        return self._head

    def close(self) -> None:
        self._db.close()

    def load_stream(self, context: str, stream_id: str) -> list[dict]:
        return self.load_streams(context, [stream_id]).get(stream_id, [])

    def load_streams(self, context: str, stream_ids: list[str]) -> dict[str, list[dict]]:
        """Many streams of one context in a few queries: {stream_id: its events in order}
        (streams with no event are left out)."""
        found: dict[str, list[dict]] = {}
        for sid, body in self._rows_in(
                "SELECT stream_id, body FROM events WHERE context = ? AND stream_id IN ({}) "
                "ORDER BY stream_id, version", stream_ids, context):
            found.setdefault(sid, []).append(wire.unpack(body))
        return found

    def _rows_in(self, sql: str, values: list, *leading: Any) -> Iterable[tuple]:
        """Rows of `sql`, whose `IN ({})` takes `values`, asked in chunks (SQLite caps the
        bound parameters of one statement); `leading` parameters come before them."""
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            yield from self._db.execute(sql.format(",".join("?" * len(chunk))),
                                        [*leading, *chunk])

    def read_after(self, position: int, limit: int) -> list[dict]:
        return [wire.unpack(body) for body in self.bodies_after(position, limit)]

    def bodies_after(self, position: int, limit: int) -> list[bytes]:
        """The packed events after `position`, in order: bytes ready for the wire."""
        rows = self._db.execute(
            "SELECT body FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (position, limit))
        return [r[0] for r in rows]

    def find_command(self, command_id: str) -> tuple[Any, int] | None:
        return self.find_commands([command_id]).get(command_id)

    def find_commands(self, command_ids: list[str]) -> dict[str, tuple[Any, int]]:
        """The stored (result, position) of each of these ids that was executed before."""
        named, by_router = _split_ids(command_ids)
        found = {cid: (wire.unpack(result), position) for cid, result, position in self._rows_in(
            "SELECT command_id, result, position FROM commands WHERE command_id IN ({})", named)}
        for boot, seqs in by_router.items():
            found.update(self._find_router_ids(boot, seqs))
        return found

    def _find_router_ids(self, boot: str, seqs: dict[int, str]) -> dict[str, tuple[Any, int]]:
        """Rows of one router whose seq range overlaps the asked seqs: usually none, as
        a router's new commands have seqs above every stored one."""
        found = {}
        for (packed,) in self._db.execute(
                "SELECT results FROM batches WHERE boot = ? AND seq_to >= ? AND seq_from <= ?",
                (boot, min(seqs), max(seqs))):
            for seq, result, position in wire.unpack(packed):
                if seq in seqs:
                    found[seqs[seq]] = (result, position)
        return found

    def find_unique(self, context: str, kind: str, value: str) -> str | None:
        return self._uniques.get((context, kind, value))

    def commit(self, batch: Commit) -> list[Stored]:
        """Store a batch atomically; return its events as stored (with positions)."""
        rows, stored = [], []
        position = self._head
        for ev in batch.events:
            position += 1
            event = {"position": position, "context": ev.context, "stream_id": ev.stream_id,
                     "version": ev.version, "type": ev.type, "data": ev.data,
                     "recorded_at": ev.recorded_at, "event_id": new_uuid()}
            body = wire.pack(event)
            stored.append(Stored(event, body))
            rows.append((position, ev.context, ev.stream_id, ev.version, body))
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write(rows, batch)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # some errors (e.g. disk full) already rolled back
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"commit failed: {exc}") from exc
        self._head = position
        for context, kind, value in batch.releases:
            self._uniques.pop((context, kind, value), None)
        for context, kind, value, stream_id in batch.claims:
            self._uniques[(context, kind, value)] = stream_id
        return stored

    def _write(self, rows: list[tuple], batch: Commit) -> None:
        db = self._db
        db.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)
        named, by_router = [], {}
        for cid, result, pos in batch.commands:
            boot_seq = _router_id(cid)
            if boot_seq is None:
                named.append((cid, wire.pack(result), pos))
            else:
                by_router.setdefault(boot_seq[0], []).append([boot_seq[1], result, pos])
        db.executemany("INSERT INTO commands (command_id, result, position) VALUES (?, ?, ?)",
                       named)
        db.executemany("INSERT INTO batches (boot, seq_from, seq_to, results) "
                       "VALUES (?, ?, ?, ?)",
                       [(boot, min(r[0] for r in rows), max(r[0] for r in rows), wire.pack(rows))
                        for boot, rows in by_router.items()])
        db.executemany("DELETE FROM uniques WHERE context = ? AND kind = ? AND value = ?",
                       batch.releases)
        db.executemany("INSERT OR REPLACE INTO uniques (context, kind, value, stream_id) "
                       "VALUES (?, ?, ?, ?)", batch.claims)


def _router_id(command_id: str) -> tuple[str, int] | None:
    """(boot, seq) of an id the router made (`n:<boot>:<seq>`), else None."""
    if not command_id.startswith("n:"):
        return None
    boot, _, seq = command_id[2:].rpartition(":")
    return (boot, int(seq)) if boot and seq.isdigit() else None


def _split_ids(command_ids: list[str]) -> tuple[list[str], dict[str, dict[int, str]]]:
    """Client-named ids, and router-made ids as {boot: {seq: id}}."""
    named: list[str] = []
    by_router: dict[str, dict[int, str]] = {}
    for cid in command_ids:
        boot_seq = _router_id(cid)
        if boot_seq is None:
            named.append(cid)
        else:
            by_router.setdefault(boot_seq[0], {})[boot_seq[1]] = cid
    return named, by_router


def all_events(store: EventStore, chunk: int = 10_000) -> Iterable[dict]:
    """Every stored event in position order, read in chunks."""
    position = 0
    while True:
        events = store.read_after(position, chunk)
        if not events:
            return
        yield from events
        position = events[-1]["position"]
