"""The PostgreSQL engine: the store in a database, which several write sides may share.

Tables (FORMAT 1; changing any of this changes the format). `events` is also read by the
read sides and cqrs-tap themselves (common.catchup_sources), so its columns are agreed:
  events       position BIGINT PRIMARY KEY, context, stream_id, version INTEGER,
               body BYTEA (the event's packed map), checksum BYTEA (the 4 bytes of
               common.checksum.checksum_bytes(body)); UNIQUE (context, stream_id, version)
  head         one row (id = 1): `position`, the last position given out, and `commits`,
               how many commits there have been. Every commit updates it first, in its
               transaction, so its row lock orders the commits: each batch's positions
               follow the last committed one, commits become visible in position order,
               and a batch rolled back gives its positions back (a sequence would leave
               a gap a subscriber would wait at forever).
  commands     command_id TEXT PRIMARY KEY, result BYTEA, position BIGINT
  batches      boot TEXT, seq_from BIGINT, seq_to BIGINT, results BYTEA;
               PRIMARY KEY (boot, seq_to): router-made ids, one row per batch (shared.py)
  claims       context, kind, value, stream_id; PRIMARY KEY (context, kind, value)
  cqrs_format  one row: format = FORMAT. Made with the tables, in one transaction under an
               advisory lock (two write sides starting together make them once); a
               database holding another format, or tables without the stamp, is refused.

Several write sides. Each keeps what it decides on in memory (the claims here, the
aggregates in write_side.batch), as it was at the last commit it knows of: its "view",
(position, commits). A commit takes the head row's lock, and if the counter shows commits
since the view (another write side's), it reads what they changed while it holds the lock,
so nothing else can commit meanwhile: the streams they wrote (handed to the decider as
stale_streams), the claims of those streams, the claims this batch looked up and its
router-made command ids. If any of that is something the batch read, the batch is rolled
back as a StoreConflict and decided again; otherwise it is stored at the positions the
counter gave, and every position in it (events, command results) moves by the same amount.
(Far behind, past FAR_BEHIND events, it rolls back first and reads them without the lock.)
One write side alone never sees a commit that is not its own, and pays none of this.

The connection: one per store, in autocommit mode (reads are single statements; a commit is
an explicit transaction, whose statements go in pipelines: two round trips, plus a third
when other commits must be read). A connection lost is made again at the next use; a read
or a commit whose connection turns out to have died before it is tried once more on a new
one. A connection lost during COMMIT leaves the outcome unknown: StoreOutcomeUnknown
(error 0 to those commands); the next commit finds the batch, if it was stored, as it would
another write side's.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Iterable, TypeVar

from common import wire
from common.checksum import checksum_bytes
from common.command_ids import router_parts
from common.store_url import StoreURL
from write_side.store import (Commit, StoreConflict, StoreCorrupt, Stored, StoreError,
                              StoreOutcomeUnknown)
from write_side.store.shared import (ClaimKey, Claims, StoreBase, batch_rows, events_by_stream,
                                     mismatch, named_rows, stamp)

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # said when a PostgreSQL store is opened, not when this module loads
    psycopg = None  # type: ignore[assignment]

FORMAT = 1
_TABLES = ("events", "head", "commands", "batches", "claims", "cqrs_format")
_SCHEMA = (
    """CREATE TABLE events (
        position  BIGINT PRIMARY KEY,
        context   TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        version   INTEGER NOT NULL,
        body      BYTEA NOT NULL,
        checksum  BYTEA NOT NULL,
        UNIQUE (context, stream_id, version))""",
    """CREATE TABLE head (
        id       SMALLINT PRIMARY KEY CHECK (id = 1),
        position BIGINT NOT NULL,
        commits  BIGINT NOT NULL)""",
    "INSERT INTO head (id, position, commits) VALUES (1, 0, 0)",
    """CREATE TABLE commands (
        command_id TEXT PRIMARY KEY,
        result     BYTEA NOT NULL,
        position   BIGINT NOT NULL)""",
    """CREATE TABLE batches (
        boot     TEXT NOT NULL,
        seq_from BIGINT NOT NULL,
        seq_to   BIGINT NOT NULL,
        results  BYTEA NOT NULL,
        PRIMARY KEY (boot, seq_to))""",
    """CREATE TABLE claims (
        context   TEXT NOT NULL,
        kind      TEXT NOT NULL,
        value     TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        PRIMARY KEY (context, kind, value))""",
    # The claims of the streams another write side changed are read again by stream.
    "CREATE INDEX claims_by_stream ON claims (context, stream_id)",
    """CREATE TABLE cqrs_format (
        id     SMALLINT PRIMARY KEY CHECK (id = 1),
        format INTEGER NOT NULL)""",
    f"INSERT INTO cqrs_format (id, format) VALUES (1, {FORMAT})",
)
# Taken while the tables are made: any 64-bit number no other program on the database uses
# for its own advisory locks ("cqrs" in ASCII, then 1).
_CREATE_LOCK = 0x6371727300000001

# %b: lists go to the server as binary arrays. As text, psycopg quotes every element
# with a regular expression, which cost 40% of a 2,048-event commit.
_TAKE_POSITIONS = ("UPDATE head SET position = position + %s, commits = commits + 1 "
                   "WHERE id = 1 RETURNING position, commits")
_INSERT_EVENTS = ("INSERT INTO events (position, context, stream_id, version, body, checksum) "
                  "SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::integer[], "
                  "%b::bytea[], %b::bytea[])")
_INSERT_COMMANDS = ("INSERT INTO commands (command_id, result, position) "
                    "SELECT * FROM unnest(%b::text[], %b::bytea[], %b::bigint[])")
_INSERT_BATCHES = ("INSERT INTO batches (boot, seq_from, seq_to, results) "
                   "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::bytea[])")
_RELEASE = ("DELETE FROM claims c USING unnest(%b::text[], %b::text[], %b::text[]) "
            "AS r(context, kind, value) "
            "WHERE (c.context, c.kind, c.value) = (r.context, r.kind, r.value)")
# Plain inserts: a value another write side claimed meanwhile fails the batch (unique
# violation, a StoreConflict) instead of being taken from its holder.
_CLAIM = ("INSERT INTO claims (context, kind, value, stream_id) "
          "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[])")
_BATCH_ROWS = "SELECT results FROM batches WHERE boot = %s AND seq_to >= %s AND seq_from <= %s"
# What the commits between the view and the lock changed (see the module's docstring).
_CHANGED = ("SELECT DISTINCT context, stream_id FROM events "
            "WHERE position > %s AND position <= %s")
_CHANGED_CLAIMS = ("SELECT c.context, c.kind, c.value, c.stream_id FROM claims c "
                   "JOIN (" + _CHANGED + ") s ON (c.context, c.stream_id) = "
                   "(s.context, s.stream_id)")
_CLAIMS_NOW = ("SELECT c.context, c.kind, c.value, c.stream_id FROM claims c "
               "JOIN unnest(%b::text[], %b::text[], %b::text[]) AS r(context, kind, value) "
               "ON (c.context, c.kind, c.value) = (r.context, r.kind, r.value)")

# Events other write sides may have stored since this one's last commit that its next
# commit reads while it holds the head row; past this, it reads them without the row (the
# others go on committing) and decides its batch again.
FAR_BEHIND = 10_000
# Seconds to reach the server (libpq counts 2 at least): short, since the write side's loop
# waits meanwhile (a URL's own ?connect_timeout= wins, for a slow network).
CONNECT_TIMEOUT = 3
# The session's settings. The lock wait is bounded so a write side whose peer holds the
# head row and hangs fails its batch (error 11) rather than hanging too; the server ends a
# session idle inside a transaction (its process stopped while committing) well before.
_SESSION = ("SELECT set_config('synchronous_commit', %s, false), "
            "set_config('lock_timeout', '10s', false), "
            "set_config('idle_in_transaction_session_timeout', '5s', false)")
_READ_ONLY_SESSION = "SELECT set_config('default_transaction_read_only', 'on', false)"
# SQLSTATEs of damage the server found in its own files (data_corrupted, index_corrupted).
_CORRUPT_STATES = ("XX001", "XX002")

log = logging.getLogger("write")
T = TypeVar("T")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class SharedClaims(Claims):
    """The claims in memory, with each stream's claims indexed, so that the claims of the
    streams another write side changed can be replaced by the database's."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        super().__init__(())
        self._by_stream: dict[tuple[str, str], set[ClaimKey]] = {}
        for context, kind, value, stream_id in rows:
            self._put((context, kind, value), stream_id)

    def _put(self, key: ClaimKey, stream_id: str) -> None:
        self._drop(key)
        self._claims[key] = stream_id
        self._by_stream.setdefault((key[0], stream_id), set()).add(key)

    def _drop(self, key: ClaimKey) -> None:
        owner = self._claims.pop(key, None)
        if owner is not None:
            self._by_stream.get((key[0], owner), set()).discard(key)

    def committed(self, batch: Commit) -> None:
        for key in batch.releases:
            self._drop(key)
        for context, kind, value, stream_id in batch.claims:
            self._put((context, kind, value), stream_id)

    def replace(self, streams: set[tuple[str, str]], keys: Iterable[ClaimKey],
                rows: Iterable[tuple[str, str, str, str]]) -> None:
        """Take the database's word for every claim of these streams and for these keys:
        `rows` are all the claims it holds among them."""
        for stream in streams:
            for key in self._by_stream.pop(stream, set()):
                self._claims.pop(key, None)
        for key in keys:
            self._drop(key)
        for context, kind, value, stream_id in rows:
            self._put((context, kind, value), stream_id)


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """A read: run on the store's connection, once more on a new one if that connection
    had died (a server restarted since the last use), with psycopg's errors made the
    store's own."""
    @functools.wraps(method)
    def guarded(self: "PostgresStore", *args: Any) -> T:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                return method(self, conn, *args)
            except psycopg.Error as exc:
                if self._lost(conn) and attempt == 1:
                    continue  # a connection that had died before this read: once more
                raise self._failure(exc, f"event store {self._where} could not be read") \
                    from None
        raise AssertionError("unreachable")
    return guarded


class PostgresStore(StoreBase):
    def __init__(self, url: StoreURL, sync: str = "full", read_only: bool = False) -> None:
        """Connect, making the tables where the database has none of them (never beside
        tables of something else). read_only: open an existing store to read it, on a
        connection that cannot write, creating nothing."""
        if psycopg is None:
            raise StoreError("a PostgreSQL store needs psycopg 3: pip install 'psycopg[binary]'")
        self._url = url
        self._where = url.redacted
        try:
            self._given = conninfo_to_dict(url.text)  # what the URL itself sets
        except psycopg.Error:  # e.g. a %-escape that is not one
            # libpq's words would quote the part it could not read: maybe the password.
            raise StoreError(f"cannot open event store {self._where}: libpq cannot read "
                             "the URL (a %-escape that is not one?)") from None
        self._password = self._given.get("password") or ""
        self._read_only = read_only
        self._sync = sync
        self._conn: Any = None
        # See the module's docstring: the commit this store's memory is as of; the head as
        # far as known (the view's, or further from reads); what other writers changed
        # since stale_streams() was last asked; the claims this batch looked up.
        self._view = (0, 0)
        self._head = 0
        self._stale: set[tuple[str, str]] = set()
        self._claim_reads: dict[ClaimKey, str | None] = {}
        try:
            conn = self._connection()
            self._prepare(conn)
            if not read_only:
                self._load(conn)
        except psycopg.Error as exc:
            self.close()
            raise self._failure(exc, f"cannot open event store {self._where}") from None
        except BaseException:
            self.close()
            raise

    # -- the connection ----------------------------------------------------------------------

    def _connection(self) -> Any:
        conn = self._conn
        if conn is not None and not self._lost(conn):
            return conn
        # Made again at each use while the server is away, so the first batch after it is
        # back succeeds; a batch stops at its first StoreError, so that is one try a batch.
        self._disconnect()
        given = self._given
        # Defaults only: whatever the URL says (?connect_timeout=..., ?application_name=...)
        # is libpq's and wins; the URL itself, password and all, goes to libpq untouched.
        extra = {key: value for key, value in {
            "connect_timeout": CONNECT_TIMEOUT,
            "fallback_application_name": ("cqrs-store-reader" if self._read_only
                                          else "cqrs-write-side"),
            # A server that vanishes without closing the connection is noticed.
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
            "keepalives_count": 3}.items() if key not in given}
        try:
            conn = psycopg.connect(self._url.text, autocommit=True, **extra)
            try:
                if self._read_only:
                    conn.execute(_READ_ONLY_SESSION)
                else:
                    conn.execute(_SESSION, ("on" if self._sync == "full" else "off",))
            except BaseException:
                conn.close()
                raise
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the database {self._where}: "
                             f"{self._say(exc)}") from None
        self._conn = conn
        return conn

    @staticmethod
    def _lost(conn: Any) -> bool:
        return conn.closed or conn.broken

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    def close(self) -> None:
        self._disconnect()

    def _say(self, exc: BaseException) -> str:
        """An error's first line, without the password should libpq ever echo it."""
        text = _first_line(exc)
        return text.replace(self._password, "***") if self._password else text

    def _failure(self, exc: Exception, doing: str) -> BaseException:
        """The store's error for a failed psycopg call; drops a dead connection."""
        text = self._say(exc)
        if isinstance(exc, (pg_errors.UniqueViolation, pg_errors.SerializationFailure,
                            pg_errors.DeadlockDetected)):
            return StoreConflict(f"{doing}: another write side stored the same thing "
                                 f"first ({text})")
        if getattr(exc, "sqlstate", None) in _CORRUPT_STATES:
            return StoreCorrupt(f"event store {self._where} is corrupt: {text}")
        if self._conn is not None and self._lost(self._conn):
            self._disconnect()
            return StoreError(f"{doing}: lost the connection to the database: {text}")
        if isinstance(exc, pg_errors.DiskFull):
            return StoreError(f"{doing}: the database is full: {text}")
        return StoreError(f"{doing}: {text}")

    # -- opening -----------------------------------------------------------------------------

    def _prepare(self, conn: Any) -> None:
        """Check the format stamp; make the tables where there are none (not read-only)."""
        if self._stamp(conn) is not None or self._read_only:
            return
        with conn.transaction():
            # Two write sides starting together on a new database: the second waits here,
            # then finds the first one's tables.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            if self._stamp(conn) is None:
                for statement in _SCHEMA:
                    conn.execute(statement)
                log.info("made the event store's tables in %s (format %d)", self._where,
                         FORMAT)

    def _stamp(self, conn: Any) -> int | None:
        """The store's format, or None where the database holds none of its tables; any
        other database is refused (StoreError)."""
        # Read from pg_class under the statement's snapshot: to_regclass() answers from
        # the session's catalog cache, which after waiting for the creation lock may not
        # have heard of the tables another write side has just made.
        there = {name for (name,) in conn.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) "
            "AND relnamespace = current_schema()::regnamespace", (list(_TABLES),))}
        found = [name for name in _TABLES if name in there]
        if "cqrs_format" not in found:
            if found:
                raise StoreError(f"event store {self._where} has tables "
                                 f"({', '.join(found)}) but no format stamp: it is not a "
                                 "store this node made; refusing it")
            if self._read_only:
                raise StoreError(f"event store {self._where} holds no event store yet "
                                 "(a write side makes it when it first starts there)")
            return None
        row = conn.execute("SELECT format FROM cqrs_format").fetchone()
        if row is None or row[0] != FORMAT:
            raise StoreError(f"event store {self._where} has format "
                             f"{row[0] if row else 'none'}, this node reads format {FORMAT}; "
                             "export its events with the version that wrote it")
        return FORMAT

    def _load(self, conn: Any) -> None:
        """The view: the head and every claim, as of one commit."""
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            position, commits = conn.execute(
                "SELECT position, commits FROM head WHERE id = 1").fetchone()
            self._claims = SharedClaims(conn.execute(
                "SELECT context, kind, value, stream_id FROM claims"))
        self._view = (position, commits)
        self._head = position

    # -- reads -------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        if self._read_only:  # a reader beside running write sides: as the database says now
            return self._read_head()
        return self._head

    @_guarded
    def _read_head(self, conn: Any) -> int:
        return conn.execute("SELECT position FROM head WHERE id = 1").fetchone()[0]

    @_guarded
    def load_streams(self, conn: Any, context: str,
                     stream_ids: list[str]) -> dict[str, list[dict]]:
        if not stream_ids:
            return {}
        rows = conn.cursor(binary=True).execute(
            "SELECT position, stream_id, body, checksum FROM events "
            "WHERE context = %s AND stream_id = ANY(%b) ORDER BY stream_id, version",
            (context, list(stream_ids))).fetchall()
        return events_by_stream(rows, context, self._where,
                                lambda body, stored: checksum_bytes(body) == stored)

    @_guarded
    def bodies_after(self, conn: Any, position: int, limit: int) -> list[bytes]:
        # Keyset on the primary key: each chunk is an index range, however far in it starts.
        rows = conn.cursor(binary=True).execute(
            "SELECT position, body, checksum FROM events WHERE position > %s "
            "ORDER BY position LIMIT %s", (position, limit)).fetchall()
        if not rows:
            return []
        # Positions are gap-free (see the module's docstring): a row missing in between
        # would otherwise be skipped silently by every subscriber catching up.
        first = max(position, 0) + 1
        if rows[-1][0] != first + len(rows) - 1:
            missing = next(at for at, (found, _, _) in enumerate(rows, first) if found != at)
            raise StoreCorrupt(f"event store {self._where} is corrupt: the event at position "
                               f"{missing} is missing")
        bodies = []
        for at, body, stored_sum in rows:
            if checksum_bytes(body) != stored_sum:
                raise mismatch(self._where, at)
            bodies.append(body)
        if not self._read_only and rows[-1][0] > self._head:
            self._head = rows[-1][0]  # another write side's events: the head is further on
        return bodies

    @_guarded
    def _named_results(self, conn: Any, command_ids: list[str]) -> dict[str, tuple[Any, int]]:
        if not command_ids:
            return {}
        return {cid: (wire.unpack(result), position) for cid, result, position in
                conn.cursor(binary=True).execute(
                    "SELECT command_id, result, position FROM commands "
                    "WHERE command_id = ANY(%b)", (list(command_ids),))}

    @_guarded
    def _batch_rows(self, conn: Any, boot: str, seq_min: int, seq_max: int) -> list[bytes]:
        return [packed for (packed,) in conn.cursor(binary=True).execute(
            _BATCH_ROWS, (boot, seq_min, seq_max))]

    def claim_owner(self, context: str, kind: str, value: str) -> str | None:
        if self._read_only:
            return self._read_claim(context, kind, value)
        owner = self._claims.claim_owner(context, kind, value)
        # Checked again at commit if another write side committed meanwhile.
        self._claim_reads[(context, kind, value)] = owner
        return owner

    @_guarded
    def _read_claim(self, conn: Any, context: str, kind: str, value: str) -> str | None:
        row = conn.execute("SELECT stream_id FROM claims WHERE context = %s AND kind = %s "
                           "AND value = %s", (context, kind, value)).fetchone()
        return row[0] if row else None

    def stale_streams(self) -> set[tuple[str, str]]:
        # A new batch starts deciding: the claims an earlier one looked up are its own.
        self._claim_reads = {}
        stale, self._stale = self._stale, set()
        return stale

    # -- commit ------------------------------------------------------------------------------

    def commit(self, batch: Commit) -> list[Stored]:
        if self._read_only:
            raise StoreError(f"event store {self._where} is open read-only: it commits nothing")
        claim_reads, self._claim_reads = self._claim_reads, {}
        for attempt in (1, 2):
            conn = self._connection()
            try:
                return self._commit_on(conn, batch, claim_reads)
            except _NotStarted as dead:
                # The connection had died before the transaction began (a server restarted
                # since the last batch): nothing was sent that could commit. Once more.
                if attempt == 2:
                    raise StoreError(f"commit failed: lost the connection to the database: "
                                     f"{self._say(dead.cause)}") from None
        raise AssertionError("unreachable")

    def _commit_on(self, conn: Any, batch: Commit,
                   claim_reads: dict[ClaimKey, str | None]) -> list[Stored]:
        planned_head = self._head  # what the batch's positions were decided from
        count = len(batch.events)
        try:
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    taken = conn.execute(_TAKE_POSITIONS, (count,))
                new_head, new_commits = taken.fetchone()
            except psycopg.Error as exc:
                if self._lost(conn):
                    self._disconnect()
                    raise _NotStarted(exc) from None
                raise
            try:
                prior = (new_head - count, new_commits - 1)
                if prior[0] - self._view[0] > FAR_BEHIND:
                    raise _FarBehind(prior[0] - self._view[0])
                if prior != self._view:
                    self._take_in_others(conn, prior, batch, claim_reads)
                stored = stamp(prior[0], batch.events)
                self._write(conn, stored, batch, prior[0] - planned_head)
            except BaseException:
                self._rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                if not self._lost(conn):
                    raise  # the server refused it: rolled back
                self._disconnect()
                raise StoreOutcomeUnknown(
                    f"the connection to the database {self._where} was lost while "
                    f"committing, so the batch may or may not be stored: {self._say(exc)}"
                ) from None
        except _FarBehind as behind:
            # Read with the head row held, that many events would hold up every other write
            # side meanwhile: they are read after the rollback, and the batch decided again.
            try:
                self._catch_up(self._connection())
            except psycopg.Error as exc:
                raise self._failure(exc, "commit failed") from None
            raise StoreConflict(f"other write sides stored {behind.events} events since this "
                                "one last committed: read first, then decided again") from None
        except psycopg.Error as exc:
            failure = self._failure(exc, "commit failed")
            if isinstance(failure, StoreConflict) and self._conn is not None:
                # A constraint refused what this store's memory said was free: that memory
                # is behind somehow, so it is read again whole (the decider drops its
                # aggregates on any failed commit).
                try:
                    self._load(self._conn)
                except psycopg.Error:
                    self._disconnect()
            raise failure from None
        self._view = (new_head, new_commits)
        self._head = new_head
        self._claims.committed(batch)
        self._committed(stored)
        return stored

    def _rollback(self, conn: Any) -> None:
        if self._lost(conn):
            self._disconnect()  # the server rolls back a transaction whose session ends
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            self._disconnect()

    def _write(self, conn: Any, stored: list[Stored], batch: Commit, shift: int) -> None:
        """Every row of the batch, in one pipeline; `shift` moves the command results'
        positions to where the counter put the batch."""
        commands = batch.commands if not shift else [
            (cid, result, position + shift) for cid, result, position in batch.commands]
        with conn.pipeline():
            if stored:
                conn.execute(_INSERT_EVENTS, (
                    [s.event["position"] for s in stored], [ev.context for ev in batch.events],
                    [ev.stream_id for ev in batch.events], [ev.version for ev in batch.events],
                    [s.body for s in stored], [checksum_bytes(s.body) for s in stored]))
            named = named_rows(commands)
            if named:
                conn.execute(_INSERT_COMMANDS, tuple(map(list, zip(*named))))
            batches = batch_rows(commands)
            if batches:
                conn.execute(_INSERT_BATCHES, tuple(map(list, zip(*batches))))
            if batch.releases:
                conn.execute(_RELEASE, tuple(map(list, zip(*batch.releases))))
            if batch.claims:
                conn.execute(_CLAIM, tuple(map(list, zip(*batch.claims))))

    def _take_in_others(self, conn: Any, prior: tuple[int, int], batch: Commit,
                        claim_reads: dict[ClaimKey, str | None]) -> None:
        """Other write sides committed since the view (the counter says so): read what
        they changed, while this transaction holds the head row (nothing else commits),
        and bring this store's memory up to `prior`. StoreConflict if they changed
        anything the batch was decided on."""
        since, upto = self._view[0], prior[0]
        routed = [(boot, seqs) for boot, seqs in _router_seqs(batch).items()]
        with conn.pipeline():
            if upto > since:
                changed_cur = conn.execute(_CHANGED, (since, upto))
                claims_cur = conn.execute(_CHANGED_CLAIMS, (since, upto))
                last_cur = conn.cursor(binary=True).execute(
                    "SELECT position, body, checksum FROM events WHERE position = %s", (upto,))
            if claim_reads:
                reads_cur = conn.execute(_CLAIMS_NOW, tuple(map(list, zip(*claim_reads))))
            routed_curs = [conn.cursor(binary=True).execute(
                _BATCH_ROWS, (boot, min(seqs), max(seqs))) for boot, seqs in routed]
        changed: set[tuple[str, str]] = set()
        rows: list[tuple[str, str, str, str]] = []
        if upto > since:
            changed = {(context, sid) for context, sid in changed_cur.fetchall()}
            rows = claims_cur.fetchall()
            self._take_last_time(upto, last_cur.fetchone())
        now = {(c, k, v): sid for c, k, v, sid in reads_cur.fetchall()} if claim_reads else {}
        # Memory as of `prior`, whatever the batch's fate: both are the database's now.
        self._learn(prior, changed, claim_reads, [*rows, *((*key, sid) for key, sid
                                                            in now.items())])
        why = self._conflict(batch, changed, claim_reads, now, routed, routed_curs)
        if why:
            raise StoreConflict(f"another write side committed first: {why}")

    def _catch_up(self, conn: Any) -> None:
        """Bring this store's memory up to the database's last commit without holding the
        head row: what other write sides changed since the view, read in one snapshot."""
        since = self._view[0]
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            head = conn.execute("SELECT position, commits FROM head WHERE id = 1").fetchone()
            upto = head[0]
            changed = {(context, sid) for context, sid in conn.execute(_CHANGED, (since, upto))}
            rows = conn.execute(_CHANGED_CLAIMS, (since, upto)).fetchall()
            if upto > since:
                self._take_last_time(upto, conn.cursor(binary=True).execute(
                    "SELECT position, body, checksum FROM events WHERE position = %s",
                    (upto,)).fetchone())
        self._learn((upto, head[1]), changed, (), rows)

    def _learn(self, view: tuple[int, int], changed: set[tuple[str, str]],
               keys: Iterable[ClaimKey], rows: list[tuple[str, str, str, str]]) -> None:
        """This store's memory as of the commit `view`: the streams changed since the old
        view are stale (the decider drops their aggregates), and the claims of those
        streams, and of `keys`, are `rows`."""
        self._claims.replace(changed, keys, rows)
        self._stale |= changed
        self._view = view
        self._head = max(self._head, view[0])

    def _take_last_time(self, position: int, last: tuple | None) -> None:
        """The write side's clock starts after the last event, whoever wrote it."""
        if last is None or checksum_bytes(last[1]) != last[2]:
            raise mismatch(self._where, position) if last else StoreCorrupt(
                f"event store {self._where} is corrupt: the event at position {position} "
                "is missing")
        recorded_at = wire.unpack(last[1])["recorded_at"]
        if self._last_time is None or recorded_at > self._last_time:
            self._last_time = recorded_at

    @staticmethod
    def _conflict(batch: Commit, changed: set[tuple[str, str]],
                  claim_reads: dict[ClaimKey, str | None], now: dict[ClaimKey, str],
                  routed: list[tuple[str, dict[int, str]]], routed_curs: list[Any]) -> str:
        """Why the batch cannot be stored as decided ('' when it can)."""
        read = set(batch.reads) | {(ev.context, ev.stream_id) for ev in batch.events}
        for context, stream_id in sorted(read & changed):
            return f"it changed stream {stream_id} ({context})"
        for key, owner in claim_reads.items():
            if now.get(key) != owner:
                return f"it changed the claim on {key[1]} {key[2]!r} ({key[0]})"
        for (boot, seqs), cur in zip(routed, routed_curs):
            for (packed,) in cur.fetchall():
                for seq, _, _ in wire.unpack(packed):
                    if seq in seqs:
                        return f"it ran command {seqs[seq]}"
        return ""


class _FarBehind(Exception):
    """Other write sides stored more than FAR_BEHIND events since this store's view."""

    def __init__(self, events: int) -> None:
        super().__init__(f"{events} events behind")
        self.events = events


class _NotStarted(Exception):
    """A commit's first round trip failed on a connection that had died: nothing of the
    batch reached the server."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _router_seqs(batch: Commit) -> dict[str, dict[int, str]]:
    """The batch's router-made command ids: {boot: {seq: command id}}. Client-named ids
    need no such check: their table's primary key refuses a second one."""
    found: dict[str, dict[int, str]] = {}
    for cid, _, _ in batch.commands:
        parts = router_parts(cid)
        if parts is not None:
            found.setdefault(parts[0], {})[parts[1]] = cid
    return found
