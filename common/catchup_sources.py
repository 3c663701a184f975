"""Where a subscriber (read side, monitor, cqrs-tap) reads stored events it did not get live.

Two sources stand behind one small interface, `CatchupSource`:

  EndpointSource   the write side's catch-up endpoint (write_side/catchup.py), over a
                   DEALER socket: the only way to a SQLite store, which is one process's.
  DatabaseSource   the store itself, on PostgreSQL: every process can reach it, so a
                   subscriber reads it on its own connection and puts no load on any
                   write side (issue 15).

The interface is a request and its answer, apart, so that a subscriber replaying the
store asks for the next chunk before it applies the current one, and the source reads
while the subscriber applies (common.subscription.Subscription.catch_up):

    ticket = source.ask(after, limit)     # the events after position `after`
    page = source.wait(ticket, timeout)   # Page(head, events), or None: no answer in time

None is never final: the caller asks again later (a write side that restarts, a database
that is down for a while). What reading on cannot help is raised, as StoreUnreadable: a
store whose bytes no longer match their checksums (StoreDamaged), or a database that is
not an event store this node reads. A BaseException, like the write side's StoreCorrupt,
so that no handler for ordinary errors between the source and the process's main can
swallow it: the process stops and says why (read_side.loop.main).
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, NamedTuple, Protocol, Sequence
import zmq

from common import config, store_url, wire
from common.checksum import checksum_bytes

log = logging.getLogger("subscription")

# Events per answer at most: the write side's catch-up server sends up to this many too
# (write_side/catchup.py MAX_CHUNK), about a megabyte.
MAX_CHUNK = 5_000


class Page(NamedTuple):
    """One answer: the store's head as the source saw it, and the events asked for (at
    most the limit, in position order, gap-free from the position asked after)."""
    head: int
    events: list[dict]


class StoreUnreadable(BaseException):
    """The store cannot be read as an event store, and asking again will not change that.
    The text says what is wrong and where (never with a password)."""


class StoreDamaged(StoreUnreadable):
    """An event's stored bytes no longer match their checksum, or the rows around them
    are broken (a position missing or filed under another): nothing read from the store
    can be trusted, as on the write side (write_side.store.StoreCorrupt)."""


class CatchupSource(Protocol):
    where: str  # the source in words, for logs and messages

    def ask(self, after: int, limit: int | None = None) -> int:
        """Start reading the events after position `after` (at most `limit`, or the
        source's chunk); a ticket for wait()."""

    def wait(self, ticket: int, timeout: float) -> Page | None:
        """The answer to `ticket`, or None when none came within `timeout` seconds (then
        every ticket asked before is abandoned: its answer, if it comes, is dropped)."""

    def close(self) -> None: ...


# ---- the write side's catch-up endpoint --------------------------------------------------------

class EndpointSource:
    """A DEALER connected to the write side's catch-up endpoint; the request and reply are
    common.wire's catch-up messages.

    `endpoints` may name several (a list, or comma-separated as config.endpoint_list
    reads it): each write side on a shared store serves the same store, and a DEALER
    spreads its requests over the servers it is connected to."""

    def __init__(self, ctx: zmq.Context, endpoints: str | Sequence[str], secure: Any = None,
                 drops: wire.Drops | None = None) -> None:
        self._endpoints = (config.endpoint_list(endpoints) if isinstance(endpoints, str)
                           else list(endpoints))
        self.where = ",".join(self._endpoints)
        self._ctx = ctx
        self._secure = secure
        self.drops = drops if drops is not None else wire.Drops(log)
        self._req = itertools.count(1)
        self._socket = self._new_socket()

    def _new_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self._secure is not None:
            self._secure.client(sock)
        for endpoint in self._endpoints:
            sock.connect(endpoint)
        return sock

    def ask(self, after: int, limit: int | None = None) -> int:
        req = next(self._req)
        self._socket.send(wire.catchup_request(req, after, limit))
        return req

    def wait(self, ticket: int, timeout: float) -> Page | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self._socket.poll(int(left * 1000) + 1):
                break
            try:
                parts = self._socket.recv_multipart()
                reply = wire.catchup_reply_body(wire.frames(parts, 1, "a catch-up reply")[0])
            except wire.BadFrame as bad:
                self.drops.drop("the catch-up connection", "catch-up server", bad)
                continue
            if reply.req == ticket:  # older replies belong to abandoned requests
                return Page(reply.head, reply.events)
        log.warning("catch-up got no answer within %.1f s; will retry", timeout)
        # A fresh socket drops the queued request, so a late answer cannot pile up.
        self._socket.close()
        self._socket = self._new_socket()
        return None

    def close(self) -> None:
        self._socket.close()


# ---- the database itself ----------------------------------------------------------------------

# The agreed schema of the PostgreSQL store (write_side/store/postgres.py writes it):
#   events(position BIGINT PRIMARY KEY, context TEXT, stream_id TEXT, version INTEGER,
#          body BYTEA, checksum BYTEA, UNIQUE (context, stream_id, version))
# `body` is the packed event map, the very bytes published; `checksum` is
# common.checksum.checksum_bytes(body). Positions are given out under a lock on a counter
# row (the engine's `head`), held until the commit: commits end in position order, so once
# position N is visible every position below it is too, and the store never shows a gap
# (tests/e2e/test_db_fed.py reads it while two writers commit).
_PAGE = ("SELECT position, body, checksum FROM events WHERE position > %s "
         "ORDER BY position LIMIT %s")
# The head from the events themselves: the counter row is written in the same transaction
# as the events it numbers, so both say the same, and this needs no name but the table's.
# Read after the page, so it is never below the page's last position.
_HEAD = "SELECT coalesce(max(position), 0) FROM events"

CONNECT_TIMEOUT = 5         # seconds to reach the server (libpq counts 2 at least)
RECONNECT_AFTER = 0.5       # seconds between attempts to reach a server that is down
DOWN_LOG_EVERY = 10.0       # seconds between warnings while the server stays down
# The session: read-only on the server's side, so this connection can change nothing,
# even by mistake; and a read stuck on the server is ended by it.
_SESSION = ("SELECT set_config('default_transaction_read_only', 'on', false), "
            "set_config('statement_timeout', '30s', false)")


class _Unavailable(Exception):
    """The server could not be reached or dropped the connection: try again later."""


class DatabaseSource:
    """Reads the events of a PostgreSQL store on a read-only connection of its own.

    It lives in common/, though it names PostgreSQL, because read sides and cqrs-tap may
    import only common (tests/unit/test_import_direction.py), and on a store every process
    can reach they read it themselves rather than through a write side.

    Every row is checked as the write side's engines check theirs: its bytes against
    their checksum, its position against the one before (no gap) and against the one its
    bytes name; any difference raises StoreDamaged. The queries run on a thread of the
    source's own, so a server that hangs costs the caller its timeout, not its loop, and
    the next chunk is read while the caller applies the current one."""

    def __init__(self, url: str, chunk: int = MAX_CHUNK) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreUnreadable("reading a PostgreSQL store needs psycopg 3 "
                                  "(pip install 'psycopg[binary]')") from None
        from psycopg.conninfo import conninfo_to_dict

        self._psycopg = psycopg
        self.url = url
        self._shown = store_url.redact(url)  # never the password, in logs and errors
        self.where = f"the database {self._shown}"
        # libpq's settings the URL gives: they win over this source's defaults, as they do
        # for the write side's engine (write_side/store/postgres.py).
        try:
            self._given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreUnreadable(f"{self.where} is not a URL libpq reads: "
                                  f"{str(exc).strip()}") from None
        self._password = self._given.get("password") or ""
        self.chunk = chunk
        self._tickets = itertools.count(1)
        self._pending: dict[int, Future] = {}  # asked, not yet waited for
        self._jobs: queue.SimpleQueue[tuple[int, int, Future] | None] = queue.SimpleQueue()
        # Owned by the worker thread; set by the caller to make the worker reconnect
        # before its next read (after a read that outlived its caller's patience).
        self._reset = False
        self._conn: Any = None  # the worker's connection (psycopg.Connection)
        self._retry_at = 0.0    # the worker's: no new connection attempt before this
        self._down_since: float | None = None  # the caller's: for its warnings
        self._down_logged = 0.0
        # A daemon: a read stuck on a server that went silent must not keep the process
        # from exiting.
        self._thread = threading.Thread(target=self._work, name="catchup-database",
                                        daemon=True)
        self._thread.start()

    # -- the caller's side ---------------------------------------------------------------

    def ask(self, after: int, limit: int | None = None) -> int:
        ticket = next(self._tickets)
        future: Future = Future()
        self._pending[ticket] = future
        self._jobs.put((after, min(limit or self.chunk, self.chunk), future))
        return ticket

    def wait(self, ticket: int, timeout: float) -> Page | None:
        future = self._pending.pop(ticket, None)
        if future is None:
            return None  # abandoned after an earlier timeout
        try:
            page = future.result(timeout)
        except FutureTimeout:
            log.warning("%s gave no answer within %.1f s; will retry on a new connection",
                        self.where, timeout)
            self._abandon()
            return None
        except CancelledError:
            return None
        except _Unavailable as exc:
            self._went_down(exc)
            return None
        if self._down_since is not None:
            log.info("%s answers again (after %.1f s)", self.where,
                     time.monotonic() - self._down_since)
            self._down_since = None
        return page

    def _abandon(self) -> None:
        """Drop every ticket asked and make the worker start afresh: the reads not started
        are cancelled, and the one running (stuck, maybe) gets no successor on its
        connection."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._reset = True

    def _went_down(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        if now - self._down_logged >= DOWN_LOG_EVERY:
            self._down_logged = now
            log.warning("cannot read %s (will retry): %s", self.where, exc)

    def close(self) -> None:
        self._abandon()
        self._jobs.put(None)
        # The worker closes its connection as it ends; a worker stuck on a silent server
        # is left behind (a daemon thread) rather than waited for.
        self._thread.join(timeout=1.0)

    # -- the worker thread ---------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            after, limit, future = job
            if not future.set_running_or_notify_cancel():
                continue  # abandoned before it started
            try:
                future.set_result(self._read(after, limit))
            except BaseException as exc:  # StoreUnreadable too: the caller raises it
                future.set_exception(exc)
        self._disconnect()

    def _read(self, after: int, limit: int) -> Page:
        if self._reset:
            self._reset = False
            self._disconnect()
        conn = self._connection()
        errors = self._psycopg.errors
        try:
            rows = conn.execute(_PAGE, (after, limit), binary=True).fetchall()
            head = conn.execute(_HEAD).fetchone()[0]
        except errors.UndefinedTable:
            # No store there yet: the first write side makes it as it starts, and a read
            # side may start first. An empty store, then.
            return Page(0, [])
        except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
            self._disconnect()  # QueryCanceled (the statement timeout) is one of these
            raise _Unavailable(self._say(exc)) from None
        except self._psycopg.Error as exc:
            raise StoreUnreadable(f"{self.where} cannot be read as an event store "
                                  f"(expected the events table of docs/storage.md): "
                                  f"{self._say(exc)}") from None
        events = self._checked(after, rows)
        return Page(max(head, events[-1]["position"] if events else 0), events)

    def _checked(self, after: int, rows: list[tuple[int, bytes, bytes]]) -> list[dict]:
        """The rows' events, each checked (see the class docstring)."""
        events = []
        expected = after + 1
        for position, body, stored_sum in rows:
            if position != expected:
                raise self._damaged(f"the event at position {expected} is missing")
            if checksum_bytes(body) != stored_sum:
                raise self._damaged(f"the event at position {position} does not match its "
                                    "checksum (its stored bytes were changed)")
            try:
                event = wire.event(wire.unpack(body))
            except wire.BadFrame as bad:
                raise self._damaged(f"the event at position {position} is not an event "
                                    f"map: {bad}") from None
            if event["position"] != position:
                raise self._damaged(f"the event at position {position} is filed under "
                                    "another position than its stored bytes name")
            events.append(event)
            expected += 1
        return events

    def _damaged(self, what: str) -> StoreDamaged:
        return StoreDamaged(f"event store {self._shown} is corrupt: {what}")

    def _connection(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        # Here, on the worker's thread: the caller's wait runs out meanwhile, as it would
        # for a write side that does not answer.
        pause = self._retry_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        extra = {key: value for key, value in {
            "connect_timeout": CONNECT_TIMEOUT, "fallback_application_name": "cqrs-subscriber",
            # A server that vanishes without closing the connection is noticed.
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
            "keepalives_count": 3}.items() if key not in self._given}
        try:
            conn = self._psycopg.connect(self.url, autocommit=True, **extra)
            try:
                conn.execute(_SESSION)
            except BaseException:
                conn.close()
                raise
        except self._psycopg.Error as exc:
            self._retry_at = time.monotonic() + RECONNECT_AFTER
            raise _Unavailable(self._say(exc)) from None
        self._conn = conn
        return conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except self._psycopg.Error:
                pass
            self._conn = None


    def _say(self, exc: BaseException) -> str:
        """An error's first line, without the password should libpq ever echo it."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return text.replace(self._password, "***") if self._password else text


# ---- which one ---------------------------------------------------------------------------------

def reads_the_database(store: str) -> bool:
    """Whether subscribers of a node on the store `store` (a checked URL; empty: the SQLite
    store of the data or runtime folder) read stored events from the database themselves:
    a store that several write sides share is one that every process can reach."""
    return config.shared_store(store)


def for_store(ctx: zmq.Context, store: str, catchup_endpoints: str | Sequence[str],
              secure: Any = None, drops: wire.Drops | None = None) -> CatchupSource:
    """The database when `store` names one every process reads (PostgreSQL); else the write
    side's catch-up endpoint(s)."""
    if reads_the_database(store):
        return DatabaseSource(store)
    return EndpointSource(ctx, catchup_endpoints, secure, drops)
