"""The SQLite engine: the store as one file (or in memory), WAL mode, synced commits.

Tables (FORMAT 4; changing any of this changes the format, and needs an upgrade below)
  events    every event, at a gap-free global position; unique (context, stream, version).
            `body` is the event's packed map; only the keys that are looked up have
            columns of their own. `checksum` is common.checksum.checksum(body), checked on every
            read of the body.
  commands  every client-named command id with its result, written with its events
  batches   the results of the commands the router named itself (ids `n:<boot>:<seq>`),
            one row per batch and router (see shared.batch_rows)
  uniques   the claims: values held by a stream (e.g. an email). The code says "claim";
            the table keeps the name it was created with, as renaming it would change
            the format of every store already written.

The tables keyed by text are WITHOUT ROWID: one B-tree per table instead of two,
which is a fifth of the cost of a commit. `PRAGMA user_version` holds FORMAT: a store
of format 3 (the same without `checksum`) is upgraded when the write side opens it,
after a copy of it is kept; any other is refused with a clear message. docs/storage.md
says all of this for users.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import sqlite3
import stat
import time
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import quote

from common import wire
from common.store_url import MEMORY
from write_side.store import Commit, StoreCorrupt, Stored, StoreError
from write_side.store.shared import (Claims, StoreBase, batch_rows, checksum, events_by_stream,
                                     mismatch, named_rows, stamp)

FORMAT = 4
# The column format 4 adds. Its DEFAULT is there only because SQLite cannot add a NOT NULL
# column without one (the upgrade from format 3 adds it that way); a new store declares it
# the same, so both have one schema. Every insert gives the checksum: a row that did not
# would hold 0, which its body does not match, so it would be found on its first read.
_CHECKSUM_COLUMN = "checksum INTEGER NOT NULL DEFAULT 0"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY,
    context     TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    body        BLOB NOT NULL,
    {_CHECKSUM_COLUMN},
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
_COLUMNS = "position, context, stream_id, version, body, checksum"
_IN_CHUNK = 500  # values per `IN (...)`: SQLite caps the bound parameters of a statement
# The files SQLite keeps beside a store in WAL mode; private like the store itself.
_SIDE_FILES = ("-wal", "-shm")
# SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_CORRUPT_CODES = (11, 26)
PRIVATE = 0o600
CREATING = ".creating"  # suffix of the file a new store is built in before it is put in place

log = logging.getLogger("write")
T = TypeVar("T")


def folder_of(path: str) -> str | None:
    """The folder holding a store file, or None for a store in memory."""
    return None if path == MEMORY else os.path.dirname(path) or "."


def _is_corrupt(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because the file is damaged (not full, locked or unwritable)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11 on
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    text = str(exc)
    return "malformed" in text or "not a database" in text


def _failure(exc: sqlite3.Error, corrupt: str, other: str) -> BaseException:
    """The store's error for a failed SQLite call, its text led by `corrupt` when the file
    is damaged (StoreCorrupt), else by `other` (StoreError)."""
    if _is_corrupt(exc):
        return StoreCorrupt(f"{corrupt}: {exc}")
    return StoreError(f"{other}: {exc}")


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """A read method whose SQLite errors become StoreCorrupt or StoreError, never escape raw:
    a raw one crashed the write side, which then crash-looped on a damaged store."""
    @functools.wraps(method)
    def guarded(self: "SQLiteStore", *args: Any) -> T:
        try:
            return method(self, *args)
        except sqlite3.Error as exc:
            raise _failure(exc, f"event store {self._path} is corrupt",
                           f"event store {self._path} could not be read") from exc
    return guarded


# -- files -----------------------------------------------------------------------------------

def _fsync_folder(folder: str) -> None:
    """Make a new name in `folder` durable (a file's own fsync does not cover its name)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_private(path: str) -> None:
    """Take every access of other users off the store and its side files (a store written
    by an older node was 0644: any local user could read every event)."""
    for name in (path, *(path + s for s in _SIDE_FILES)):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            try:
                os.chmod(name, mode & 0o700)
            except OSError as exc:
                raise StoreError(f"event store file {name} is open to other users (mode "
                                 f"{mode:04o}) and cannot be made private: {exc.strerror}"
                                 ) from exc
            log.warning("event store file %s was open to other users (mode %04o); made it "
                        "%04o", name, mode, mode & 0o700)


def _refuse_unknown_file(path: str) -> None:
    """A file at the store's place that no node made whole: refused, never taken for a new
    store (a 0-byte file was, and the sample data seeded over whatever was meant to be
    there)."""
    if os.path.getsize(path) == 0:
        raise StoreError(f"event store {path} is an empty file (0 bytes), not a store; "
                         "refusing it: restore the store from a backup, or remove the file "
                         "to start a new store")


def _refuse_leftovers(path: str) -> None:
    """No store file, yet its journal is there: the store was removed or moved without it.
    SQLite would replay that journal into a new store, so none is made."""
    for suffix in ("-wal", "-journal"):
        if os.path.exists(path + suffix):
            raise StoreError(f"event store {path} is missing but {path + suffix} is there; "
                             "refusing to start a new store beside it: put the store back, "
                             "or remove that file")


def _create_file(path: str) -> None:
    """Build a new store beside `path` and put it in place whole: a process killed while
    creating leaves no file at `path`, so any file found there was a complete store."""
    building = path + CREATING
    for leftover in ("", "-journal", "-wal", "-shm"):  # of a creation that was killed
        try:
            os.unlink(building + leftover)
        except FileNotFoundError:
            pass
    os.close(os.open(building, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
    try:
        db = sqlite3.connect(building, isolation_level=None)
        try:
            _create_tables(db)  # synchronous=FULL by default: on disk when this returns
        finally:
            db.close()
        try:
            os.link(building, path)  # fails, rather than replaces, if a store appeared there
        except FileExistsError:
            pass  # another opener made one first: that one is used
        except OSError:  # a filesystem without hard links
            if not os.path.exists(path):
                os.rename(building, path)
        _fsync_folder(folder_of(path) or ".")
    finally:
        try:
            os.unlink(building)
        except FileNotFoundError:
            pass


def _create_tables(db: sqlite3.Connection) -> None:
    """The tables and the format stamp, in one transaction."""
    db.execute("BEGIN")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {FORMAT}")
    db.execute("COMMIT")


def _backup(path: str, old_format: int) -> str:
    """Copy the store file (whole: its WAL was checkpointed, and the caller holds the write
    lock) to a new name beside it, private and synced; returns that name."""
    name, n = f"{path}.format{old_format}.bak", 1
    while os.path.exists(name):  # an earlier backup is never overwritten
        n += 1
        name = f"{path}.format{old_format}.{n}.bak"
    partial = name + ".partial"
    with open(path, "rb") as src, \
            os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE),
                      "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    os.rename(partial, name)  # never a half copy under the backup's name
    _fsync_folder(folder_of(path) or ".")
    return name


# -- format ----------------------------------------------------------------------------------

def _refuse_format(path: str, found: int, tables: int, read_only: bool) -> None:
    """Raise StoreError unless the store's stamp is FORMAT, or 3 and it can be upgraded."""
    if not tables:
        raise StoreError(f"event store {path} holds no tables: it is not a store this node "
                         "made; refusing it (a new store is made only where there is no file)")
    if found == 0:
        raise StoreError(f"event store {path} has tables but no format stamp: it is not a "
                         "store this node made; refusing it")
    if found == 3 and read_only:
        raise StoreError(f"event store {path} has format 3: start the node on it once, and "
                         f"its write side upgrades it to format {FORMAT} (keeping a copy)")
    if found not in (3, FORMAT):
        raise StoreError(f"event store {path} has format {found}, this node reads "
                         f"format {FORMAT}; export its events with the version that wrote it")


def _connect_read_only(path: str) -> sqlite3.Connection:
    if path == MEMORY:
        raise StoreError("a store in memory belongs to its process: it cannot be opened "
                         "read-only from elsewhere")
    # mode=ro: nothing is created or written, and the running write side's WAL is read.
    return sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)


class SQLiteStore(StoreBase):
    def __init__(self, path: str, sync: str = "full", max_pages: int = 0,
                 read_only: bool = False) -> None:
        """Open the store, making it only where there is no file; max_pages > 0 caps its
        size (a test-only fault). read_only: open an existing store beside its running
        write side, changing nothing (not even an older format: that is refused)."""
        self._path = path
        try:
            self._db = self._connect(path, read_only)
            try:
                self._prepare(path, sync, max_pages, read_only)
                row = self._db.execute("SELECT MAX(position) FROM events").fetchone()
                self._claims = Claims(self._db.execute(
                    "SELECT context, kind, value, stream_id FROM uniques"))
            except BaseException:
                self._db.close()
                raise
        except sqlite3.Error as exc:
            raise _failure(exc, f"cannot open event store {path}",
                           f"cannot open event store {path}") from exc
        except OSError as exc:  # making, copying or protecting the store's files
            raise StoreError(f"cannot open event store {path}: {exc}") from exc
        self._head = row[0] or 0

    @staticmethod
    def _connect(path: str, read_only: bool) -> sqlite3.Connection:
        # lexists: a dangling link counts as a file (SQLite would make its target).
        there = path != MEMORY and os.path.lexists(path)
        if there:
            _refuse_unknown_file(path)
        if read_only:
            return _connect_read_only(path)
        if path != MEMORY:
            if not there:
                _refuse_leftovers(path)
                _create_file(path)
            _make_private(path)  # before SQLite opens it: its WAL and SHM take its mode
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def _prepare(self, path: str, sync: str, max_pages: int, read_only: bool) -> None:
        db = self._db
        if path == MEMORY:  # new at each opening: a file's checks have nothing to check
            _create_tables(db)
        else:
            found = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            # The format first, anything else after: a store of another format is then
            # refused before anything in it, even its journal mode, is changed.
            _refuse_format(path, found, tables, read_only)
            if read_only:
                return
            db.execute("PRAGMA busy_timeout = 0")
            self._check_structure(path)
            if found == 3:
                self._upgrade_from_3(path)
            self._use_wal(path)
        db.execute(f"PRAGMA synchronous = {'FULL' if sync == 'full' else 'NORMAL'}")
        if max_pages:
            db.execute(f"PRAGMA max_page_count = {int(max_pages)}")

    def _check_structure(self, path: str) -> None:
        """SQLite's own check of every page (not of event contents: the checksums do that on
        each read). Done at each start of the write side, so a store with a damaged page is
        refused before any command runs, rather than when a read happens to reach that page.
        It reads the whole file: about 0.3 s for a million events (370 MB) in the page
        cache, the disk's time to read it otherwise."""
        started = time.monotonic()
        problem = self._db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise StoreCorrupt(f"event store {path} is corrupt: {problem}")
        took = time.monotonic() - started
        if took > 1.0:
            log.info("checked the event store's pages in %.1f s", took)

    def _upgrade_from_3(self, path: str) -> None:
        """Format 3 -> 4: add the events' checksums, in one transaction, after a copy of the
        format-3 file is kept beside it (a node killed part-way leaves the store in format
        3, and the next start does it again)."""
        db = self._db
        started = time.monotonic()
        busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        db.execute("BEGIN IMMEDIATE")  # no other writer until the upgrade is committed
        try:
            wal = path + "-wal"
            if busy or (os.path.exists(wal) and os.path.getsize(wal)):
                raise StoreError(f"cannot upgrade event store {path}: another process is "
                                 "using it")
            backup = _backup(path, 3)
            db.create_function("event_checksum", 1, checksum, deterministic=True)
            db.execute(f"ALTER TABLE events ADD COLUMN {_CHECKSUM_COLUMN}")
            count = db.execute("UPDATE events SET checksum = event_checksum(body)").rowcount
            db.execute(f"PRAGMA user_version = {FORMAT}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        log.warning("upgraded event store %s from format 3 to format %d: checksums added to "
                    "%d events in %.1f s; the format-3 file is kept as %s", path, FORMAT,
                    count, time.monotonic() - started, backup)

    def _use_wal(self, path: str) -> None:
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"cannot use WAL mode on {path} (got {mode})")

    @property
    def head(self) -> int:
        return self._head

    def close(self) -> None:
        self._db.close()

    @_guarded
    def load_streams(self, context: str, stream_ids: list[str]) -> dict[str, list[dict]]:
        rows = self._rows_in("SELECT position, stream_id, body, checksum FROM events "
                             "WHERE context = ? AND stream_id IN ({}) "
                             "ORDER BY stream_id, version", stream_ids, context)
        return events_by_stream(rows, context, self._path,
                                lambda body, stored: checksum(body) == stored)

    def _rows_in(self, sql: str, values: list, *leading: Any) -> Iterable[tuple]:
        """Rows of `sql`, whose `IN ({})` takes `values`, asked in chunks; `leading`
        parameters come before them."""
        for start in range(0, len(values), _IN_CHUNK):
            chunk = values[start:start + _IN_CHUNK]
            yield from self._db.execute(sql.format(",".join("?" * len(chunk))),
                                        [*leading, *chunk])

    @_guarded
    def bodies_after(self, position: int, limit: int) -> list[bytes]:
        rows = self._db.execute(
            "SELECT position, body, checksum FROM events WHERE position > ? "
            "ORDER BY position LIMIT ?", (position, limit)).fetchall()
        if not rows:
            return []
        # Positions are gap-free: a row missing in between would otherwise be skipped
        # silently by every subscriber catching up. Unique, in order and all after
        # `position`, they have no gap when the last is as far on as there are rows.
        first = max(position, 0) + 1
        if rows[-1][0] != first + len(rows) - 1:
            missing = next(at for at, (found, _, _) in enumerate(rows, first) if found != at)
            raise StoreCorrupt(f"event store {self._path} is corrupt: the event at position "
                               f"{missing} is missing")
        crc32 = checksum
        bodies = [body for _, body, stored_sum in rows if crc32(body) == stored_sum]
        if len(bodies) != len(rows):
            raise mismatch(self._path, next(at for at, body, stored_sum in rows
                                            if crc32(body) != stored_sum))
        return bodies

    @_guarded
    def _named_results(self, command_ids: list[str]) -> dict[str, tuple[Any, int]]:
        return {cid: (wire.unpack(result), position) for cid, result, position in self._rows_in(
            "SELECT command_id, result, position FROM commands WHERE command_id IN ({})",
            command_ids)}

    @_guarded
    def _batch_rows(self, boot: str, seq_min: int, seq_max: int) -> list[bytes]:
        return [packed for (packed,) in self._db.execute(
            "SELECT results FROM batches WHERE boot = ? AND seq_to >= ? AND seq_from <= ?",
            (boot, seq_min, seq_max))]

    def claim_owner(self, context: str, kind: str, value: str) -> str | None:
        return self._claims.claim_owner(context, kind, value)

    def commit(self, batch: Commit) -> list[Stored]:
        stored = stamp(self._head, batch.events)
        rows = [(s.event["position"], ev.context, ev.stream_id, ev.version, s.body,
                 checksum(s.body)) for s, ev in zip(stored, batch.events)]
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
            raise _failure(exc, f"event store {self._path} is corrupt",
                           "commit failed") from exc
        self._head += len(stored)
        self._claims.committed(batch)
        self._committed(stored)
        return stored

    def _write(self, rows: list[tuple], batch: Commit) -> None:
        db = self._db
        db.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO commands (command_id, result, position) VALUES (?, ?, ?)",
                       named_rows(batch.commands))
        db.executemany("INSERT INTO batches (boot, seq_from, seq_to, results) "
                       "VALUES (?, ?, ?, ?)", batch_rows(batch.commands))
        db.executemany("DELETE FROM uniques WHERE context = ? AND kind = ? AND value = ?",
                       batch.releases)
        db.executemany("INSERT OR REPLACE INTO uniques (context, kind, value, stream_id) "
                       "VALUES (?, ?, ?, ?)", batch.claims)
