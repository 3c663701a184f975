"""One contract for the event store, run against every engine.

StoreContract holds what every engine must do, through the EventStore interface only.
An engine joins with one subclass named Test<Engine> that says where a test's store
lives (the `url` fixture) and, through its hooks, what it can provoke (a store of
another format, a full disk, stored rows changed behind its back); tests of that
engine's own mechanics go in its subclass. An engine whose store needs a server joins
from tests/e2e (this folder starts no process): PostgreSQL's subclass is
tests/e2e/test_store_contract_postgres.py, which imports StoreContract from here.
"""
from __future__ import annotations

import os
import sqlite3
from typing import Callable, Iterator

import pytest

from common import store_url
from write_side.store import (Commit, EventStore, NewEvent, StoreCorrupt, StoreError,
                              all_events, open_store)

Opener = Callable[..., EventStore]
OK = {"success": True, "events": []}


def ev(stream, version, type_="UserCreated", data=None, context="accounts"):
    return NewEvent(context, stream, version, type_, data or {"name": stream},
                    f"2024-01-0{version}T00:00:00.000000Z")


def commit(store, *events, commands=(), claims=(), releases=()):
    return store.commit(Commit(list(events), list(commands), list(claims), list(releases)))


def named(stream: str, name: str, version: int = 1) -> NewEvent:
    """An event whose stored bytes hold `name`, for tests that change a byte of it."""
    return NewEvent("accounts", stream, version, "UserCreated", {"name": name},
                    f"2024-02-0{version}T00:00:00.000000Z")


def big_events(count: int) -> list[NewEvent]:
    return [NewEvent("accounts", f"b{i}", 1, "UserCreated", {"name": "x" * 2000},
                     "2024-01-01T00:00:00.000000Z") for i in range(count)]


class StoreContract:
    """The tests every engine passes. Not collected itself (no Test prefix)."""

    # Whether a store opened again at its URL holds what was committed before (a store in
    # memory is new each time).
    reopens = True
    # Options of open_store that cap the store so a commit runs out of room, or None when
    # the engine cannot provoke a full disk.
    full_options: dict | None = None
    # The format make_foreign_store writes: one the engine does not read.
    foreign_format = 1

    @pytest.fixture
    def url(self, tmp_path) -> str:
        raise NotImplementedError("an engine's subclass says where its test stores live")

    def make_foreign_store(self, url: str) -> None:
        """Write at `url` a store of format `foreign_format` holding one event; skip if the
        engine cannot."""
        pytest.skip("this engine cannot be given a store of another format")

    # Damage done behind the store's back, as a disk or a hand would do it; `store` is the
    # open store (None once it is closed), `url` where it lives. Each engine changes its
    # own stored form; one that cannot skips.

    def change_stored_bytes(self, store: EventStore | None, url: str, position: int,
                            old: bytes, new: bytes) -> None:
        """Replace `old` by `new` (as long) in the stored bytes of the event at `position`,
        leaving its checksum as it was."""
        pytest.skip("this engine cannot have its stored events changed")

    def remove_stored_event(self, store: EventStore | None, url: str, position: int) -> None:
        """Remove the event at `position` and nothing else."""
        pytest.skip("this engine cannot have its stored events changed")

    def refile_stored_event(self, store: EventStore | None, url: str, position: int,
                            stream_id: str) -> None:
        """File the event at `position` under another stream id, leaving its bytes."""
        pytest.skip("this engine cannot have its stored events changed")

    @pytest.fixture
    def open_(self, url) -> Iterator[Opener]:
        """open_(**options): the test's store opened (again), closed at teardown."""
        opened: list[EventStore] = []

        def open_at(**options) -> EventStore:
            opened.append(open_store(url, **options))
            return opened[-1]

        yield open_at
        for store in opened:
            store.close()

    @pytest.fixture
    def store(self, open_) -> EventStore:
        return open_()

    def needs_reopening(self) -> None:
        if not self.reopens:
            pytest.skip("this engine's stores are new each time they are opened")

    # -- positions and versions ------------------------------------------------------------

    def test_positions_are_gap_free_across_commits(self, store):
        first = commit(store, ev("a", 1), ev("b", 1))
        second = commit(store, ev("a", 2, "UserRenamed"))
        assert [e.event["position"] for e in first + second] == [1, 2, 3]
        assert store.head == 3
        assert [e["position"] for e in store.read_after(0, 10)] == [1, 2, 3]

    def test_stored_event_has_every_field_in_protocol_order(self, store):
        (stored,) = commit(store, ev("a", 1))
        assert list(stored.event) == ["position", "context", "stream_id", "version", "type",
                                      "data", "recorded_at", "event_id"]
        assert stored.event["data"] == {"name": "a"}
        assert store.load_stream("accounts", "a") == [stored.event]
        assert store.bodies_after(0, 10) == [stored.body]
        assert list(store.read_after(0, 10)[0]) == list(stored.event)  # the order is kept

    def test_stream_version_is_unique_and_a_conflict_stores_nothing(self, store):
        commit(store, ev("a", 1))
        with pytest.raises(StoreError):
            commit(store, ev("b", 1), ev("a", 1), commands=[("c:x:1", OK, 2)],
                   claims=[("accounts", "email", "b@x.io", "b")])
        assert store.head == 1
        assert store.load_stream("accounts", "b") == []
        assert store.find_command("c:x:1") is None
        assert store.claim_owner("accounts", "email", "b@x.io") is None
        (next_one,) = commit(store, ev("b", 1))  # the refused batch took no position
        assert next_one.event["position"] == 2

    def test_same_stream_id_in_two_contexts_is_two_streams(self, store):
        commit(store, ev("a", 1), ev("a", 1, context="directory"))
        assert len(store.load_stream("accounts", "a")) == 1
        assert len(store.load_stream("directory", "a")) == 1

    def test_load_streams_returns_each_streams_events_in_order(self, store):
        commit(store, ev("a", 1), ev("b", 1), ev("a", 2, "UserRenamed"),
               ev("a", 1, context="directory"))
        commit(store, *[ev(f"s{i}", 1) for i in range(600)])  # more than one query's worth
        asked = ["a", "b", "nobody"] + [f"s{i}" for i in range(600)]
        found = store.load_streams("accounts", asked)
        assert set(found) == set(asked) - {"nobody"}
        assert [(e["version"], e["type"]) for e in found["a"]] == [(1, "UserCreated"),
                                                                  (2, "UserRenamed")]
        assert found["a"] == store.load_stream("accounts", "a")

    # -- command results -------------------------------------------------------------------

    def test_commands_are_kept_with_their_results(self, store):
        """Ids in the router's own form (n:<boot>:<seq>) are covered below."""
        commit(store, ev("a", 1), commands=[("n:1", OK, 1)])
        assert store.find_command("n:1") == (OK, 1)
        assert store.find_command("n:2") is None
        with pytest.raises(StoreError):
            commit(store, commands=[("n:1", {}, 1)])

    @pytest.mark.parametrize("command_id",
                             ["n:b0ot:7", "c:accounts:n:b0ot:7", "n:7", "n:b0ot:x"])
    def test_every_id_form_is_kept(self, store, command_id):
        commit(store, ev("a", 1), commands=[(command_id, OK, 1)])
        assert store.find_commands([command_id]) == {command_id: (OK, 1)}
        with pytest.raises(StoreError):
            commit(store, commands=[(command_id, {}, 1)])

    def test_router_ids_are_found_by_seq_in_any_batch(self, store):
        commit(store, commands=[(f"n:r1:{s}", {"n": s}, s) for s in (1, 2, 5)])
        commit(store, commands=[("n:r1:3", OK, 6), ("n:r2:3", {"other": 1}, 6),
                                ("n:r1:9", OK, 7)])
        asked = [f"n:r1:{s}" for s in range(12)] + ["n:r2:3", "n:r3:3", "c:x:n:r1:1"]
        assert store.find_commands(asked) == {
            "n:r1:1": ({"n": 1}, 1), "n:r1:2": ({"n": 2}, 2), "n:r1:5": ({"n": 5}, 5),
            "n:r1:3": (OK, 6), "n:r1:9": (OK, 7), "n:r2:3": ({"other": 1}, 6)}

    # -- claims ----------------------------------------------------------------------------

    def test_claims_and_releases(self, store):
        commit(store, claims=[("directory", "email", "a@x.io", "u1")])
        assert store.claim_owner("directory", "email", "a@x.io") == "u1"
        assert store.claim_owner("accounts", "email", "a@x.io") is None  # per context
        commit(store, releases=[("directory", "email", "a@x.io")])
        assert store.claim_owner("directory", "email", "a@x.io") is None
        # Released then claimed again in one batch (an email moving to another user).
        commit(store, claims=[("directory", "email", "b@x.io", "u1")])
        commit(store, releases=[("directory", "email", "b@x.io")],
               claims=[("directory", "email", "b@x.io", "u2")])
        assert store.claim_owner("directory", "email", "b@x.io") == "u2"

    # -- catch-up reads --------------------------------------------------------------------

    def test_read_after_pages_in_order(self, store):
        commit(store, *[ev(f"s{i}", 1) for i in range(25)])
        assert [e["position"] for e in store.read_after(10, 5)] == [11, 12, 13, 14, 15]
        assert [e["position"] for e in all_events(store, chunk=7)] == list(range(1, 26))
        assert store.read_after(25, 5) == [] and store.bodies_after(25, 5) == []

    def test_bodies_after_are_the_committed_bytes_in_chunks(self, store):
        stored = commit(store, *[ev(f"s{i}", 1) for i in range(10)])
        chunks, position = [], 0
        while chunk := store.bodies_after(position, 4):
            chunks.append(chunk)
            position += len(chunk)
        assert [len(c) for c in chunks] == [4, 4, 2]
        assert [b for c in chunks for b in c] == [s.body for s in stored]

    # -- reopening -------------------------------------------------------------------------

    def test_reopening_keeps_everything(self, open_):
        self.needs_reopening()
        first = open_()
        commit(first, ev("a", 1), ev("a", 2, "UserRenamed"),
               commands=[("n:r:1", {"r": 1}, 2), ("c:accounts:k", {"k": 1}, 2)],
               claims=[("accounts", "email", "a@x.io", "a")])
        commit(first, ev("b", 1), claims=[("accounts", "email", "b@x.io", "b")])
        commit(first, releases=[("accounts", "email", "b@x.io")])
        first.close()
        again = open_()
        assert again.head == 3
        assert again.find_commands(["n:r:1", "c:accounts:k"]) == {
            "n:r:1": ({"r": 1}, 2), "c:accounts:k": ({"k": 1}, 2)}
        assert again.claim_owner("accounts", "email", "a@x.io") == "a"
        assert again.claim_owner("accounts", "email", "b@x.io") is None
        assert [e["version"] for e in again.load_stream("accounts", "a")] == [1, 2]
        (fourth,) = commit(again, ev("c", 1))
        assert fourth.event["position"] == 4

    def test_a_read_only_store_sees_what_the_writer_committed_and_writes_nothing(self, open_):
        self.needs_reopening()
        writer = open_()
        commit(writer, ev("a", 1), commands=[("n:r:1", OK, 1)],
               claims=[("accounts", "email", "a@x.io", "a")])
        reader = open_(read_only=True)
        assert reader.head == 1
        assert list(all_events(reader)) == writer.read_after(0, 10)
        assert reader.find_command("n:r:1") == (OK, 1)
        assert reader.claim_owner("accounts", "email", "a@x.io") == "a"
        with pytest.raises(StoreError):
            commit(reader, ev("b", 1))
        commit(writer, ev("b", 1))  # the reader does not stand in the writer's way
        assert [e["stream_id"] for e in writer.read_after(0, 10)] == ["a", "b"]

    # -- time --------------------------------------------------------------------------------

    def test_last_recorded_at_is_the_last_events(self, store):
        assert store.last_recorded_at() == ""
        commit(store, ev("a", 1), ev("b", 2))
        assert store.last_recorded_at() == "2024-01-02T00:00:00.000000Z"
        commit(store, ev("c", 3))
        assert store.last_recorded_at() == "2024-01-03T00:00:00.000000Z"
        commit(store, claims=[("accounts", "email", "a@x.io", "a")])  # no event: no change
        assert store.last_recorded_at() == "2024-01-03T00:00:00.000000Z"

    def test_last_recorded_at_is_read_from_the_store_when_reopened(self, open_):
        self.needs_reopening()
        first = open_()
        commit(first, ev("a", 1), ev("a", 2, "UserRenamed"))
        first.close()
        assert open_().last_recorded_at() == "2024-01-02T00:00:00.000000Z"
        assert open_(read_only=True).last_recorded_at() == "2024-01-02T00:00:00.000000Z"

    # -- damage ----------------------------------------------------------------------------

    def test_a_changed_byte_in_a_stored_event_is_never_served(self, store, url):
        """A name with one byte changed still unpacks as a good event: only the checksum
        can tell it from the one committed."""
        commit(store, named("a", "Bartholomew"), named("b", "Zebedee"), named("c", "Ida"))
        self.change_stored_bytes(store, url, 1, b"Bartholomew", b"Bartholomex")
        for read in (lambda: store.load_stream("accounts", "a"),
                     lambda: store.load_streams("accounts", ["b", "a"]),
                     lambda: store.bodies_after(0, 10),
                     lambda: store.read_after(0, 10),
                     lambda: list(all_events(store))):
            with pytest.raises(StoreCorrupt, match="position 1 does not match its checksum"):
                read()
        # The damage is the event's own: the others are still served.
        assert [e["stream_id"] for e in store.read_after(1, 10)] == ["b", "c"]
        assert store.load_stream("accounts", "b")[0]["data"] == {"name": "Zebedee"}

    def test_a_changed_byte_is_found_after_reopening(self, open_, url):
        self.needs_reopening()
        first = open_()
        commit(first, named("a", "Bartholomew"), named("b", "Zebedee"))
        first.close()
        self.change_stored_bytes(None, url, 2, b"Zebedee", b"Zebedef")
        again = open_()
        with pytest.raises(StoreCorrupt, match="position 2 does not match its checksum"):
            again.load_stream("accounts", "b")
        with pytest.raises(StoreCorrupt, match="position 2"):
            again.bodies_after(1, 10)
        # The write side's clock starts at the last event: it is checked too.
        with pytest.raises(StoreCorrupt, match="position 2"):
            again.last_recorded_at()
        with pytest.raises(StoreCorrupt, match="position 2"):
            open_(read_only=True).read_after(0, 10)

    def test_an_event_missing_in_between_is_never_skipped(self, store, url):
        commit(store, *[ev(f"s{i}", 1) for i in range(5)])
        self.remove_stored_event(store, url, 3)
        assert len(store.bodies_after(3, 10)) == 2  # after the gap, all is well
        with pytest.raises(StoreCorrupt, match="position 3 is missing"):
            store.bodies_after(0, 10)
        with pytest.raises(StoreCorrupt, match="position 3 is missing"):
            store.read_after(2, 10)

    def test_an_event_filed_under_another_stream_is_never_served(self, store, url):
        commit(store, named("a", "Ann"), named("b", "Bob"))
        self.refile_stored_event(store, url, 2, "z")
        with pytest.raises(StoreCorrupt, match="position 2 is filed under another stream"):
            store.load_stream("accounts", "z")

    # -- refusals --------------------------------------------------------------------------

    def test_a_store_of_another_format_is_refused_with_a_clear_message(self, url):
        self.make_foreign_store(url)
        says = f"has format {self.foreign_format}, this node reads format"
        with pytest.raises(StoreError, match=says):
            open_store(url)
        with pytest.raises(StoreError, match=says):
            open_store(url, read_only=True)

    def test_a_full_store_refuses_the_batch_and_keeps_what_it_had(self, open_):
        if self.full_options is None:
            pytest.skip("this engine cannot provoke a full disk")
        s = open_(**self.full_options)
        commit(s, ev("a", 1))
        with pytest.raises(StoreError, match="full"):
            commit(s, *big_events(50))
        assert s.head == 1
        assert [e["stream_id"] for e in s.read_after(0, 10)] == ["a"]
        (next_one,) = commit(s, ev("c", 1))  # still usable once there is room again
        assert next_one.event["position"] == 2


class SQLiteRows:
    """The damage hooks for the SQLite engine: rows changed with SQL, through `db_for`."""

    def db_for(self, store: EventStore | None, url: str) -> sqlite3.Connection:
        raise NotImplementedError

    def _change(self, store: EventStore | None, url: str, sql: str, *params) -> None:
        db = self.db_for(store, url)
        try:
            assert db.execute(sql, params).rowcount == 1
            if db.in_transaction:
                db.commit()
        finally:
            if store is None or db is not getattr(store, "_db", None):
                db.close()

    def change_stored_bytes(self, store, url, position, old, new):
        assert len(old) == len(new)
        db = self.db_for(store, url)
        (body,) = db.execute("SELECT body FROM events WHERE position = ?",
                             (position,)).fetchone()
        assert body.count(old) == 1
        self._change(store, url, "UPDATE events SET body = ? WHERE position = ?",
                     body.replace(old, new), position)

    def remove_stored_event(self, store, url, position):
        self._change(store, url, "DELETE FROM events WHERE position = ?", position)

    def refile_stored_event(self, store, url, position, stream_id):
        self._change(store, url, "UPDATE events SET stream_id = ? WHERE position = ?",
                     stream_id, position)


def flip_byte(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


class TestSQLiteFile(SQLiteRows, StoreContract):
    full_options = {"max_pages": 8}

    @pytest.fixture
    def url(self, tmp_path) -> str:
        return store_url.sqlite_file(str(tmp_path / "events.sqlite3")).text

    @staticmethod
    def path(url: str) -> str:
        return store_url.parse(url).path

    def db_for(self, store, url):
        # Another connection to the file, as another process would change it; the open
        # store sees the change at its next read, as it would a disk's.
        return sqlite3.connect(self.path(url))

    def make_foreign_store(self, url: str) -> None:
        db = sqlite3.connect(self.path(url))
        db.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, type TEXT)")
        db.execute("INSERT INTO events VALUES (1, 'UserCreated')")
        db.execute("PRAGMA user_version = 1")
        db.commit()
        db.close()

    def test_the_file_is_in_wal_mode(self, open_, url):
        commit(open_(), ev("a", 1))
        assert sqlite3.connect(self.path(url)).execute(
            "PRAGMA journal_mode").fetchone()[0] == "wal"

    def test_a_store_of_another_format_is_left_as_it_was(self, url):
        """Refused before anything in it changes, not even its journal mode."""
        self.make_foreign_store(url)
        with open(self.path(url), "rb") as f:
            before = f.read()
        with pytest.raises(StoreError):
            open_store(url)
        with open(self.path(url), "rb") as f:
            assert f.read() == before

    def test_reading_a_store_that_does_not_exist_creates_nothing(self, url, tmp_path):
        with pytest.raises(StoreError):
            open_store(url, read_only=True)
        assert os.listdir(tmp_path) == []

    def test_creating_a_store_is_all_or_nothing(self, url, tmp_path, monkeypatch):
        """A store whose creation failed half-way (as when its process is killed then)
        leaves no file where the store goes, so the next start creates it whole."""
        from write_side.store import sqlite as engine

        broken = engine._SCHEMA + "CREATE TABLE events (x INTEGER);"  # fails after the rest
        monkeypatch.setattr(engine, "_SCHEMA", broken)
        with pytest.raises(StoreError):
            open_store(url)
        assert os.listdir(tmp_path) == []
        monkeypatch.undo()
        # A creation killed part-way leaves its file under another name: it is no obstacle.
        (tmp_path / ("events.sqlite3" + engine.CREATING)).write_bytes(b"half a store")
        s = open_store(url)
        commit(s, ev("a", 1))
        assert s.head == 1
        s.close()
        assert sorted(os.listdir(tmp_path)) == ["events.sqlite3"]
        assert sqlite3.connect(self.path(url)).execute(
            "PRAGMA user_version").fetchone()[0] == engine.FORMAT

    # -- files that are not a store this node made -------------------------------------------

    def test_an_empty_file_is_refused_and_left_as_it_is(self, url, tmp_path):
        """A 0-byte file was taken for a new store, and the sample data seeded into it."""
        empty = tmp_path / "events.sqlite3"
        empty.write_bytes(b"")
        for options in ({}, {"read_only": True}):
            with pytest.raises(StoreError, match=r"is an empty file \(0 bytes\), not a store"):
                open_store(url, **options)
        assert empty.read_bytes() == b""
        assert os.listdir(tmp_path) == ["events.sqlite3"]

    def test_tables_without_a_format_stamp_are_refused(self, url):
        db = sqlite3.connect(self.path(url))
        db.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, body BLOB)")
        db.close()
        with open(self.path(url), "rb") as f:
            before = f.read()
        for options in ({}, {"read_only": True}):
            with pytest.raises(StoreError, match="has tables but no format stamp"):
                open_store(url, **options)
        with open(self.path(url), "rb") as f:
            assert f.read() == before

    def test_a_database_without_tables_is_refused(self, url):
        db = sqlite3.connect(self.path(url))
        db.execute("PRAGMA user_version = 4")  # a valid SQLite file, but no store in it
        db.close()
        with pytest.raises(StoreError, match="holds no tables"):
            open_store(url)

    def test_a_journal_without_its_store_is_refused(self, url, tmp_path):
        """SQLite would replay a leftover WAL into a new store made beside it."""
        (tmp_path / "events.sqlite3-wal").write_bytes(b"frames of a store that was moved")
        with pytest.raises(StoreError, match="is missing but .*-wal is there"):
            open_store(url)
        assert os.listdir(tmp_path) == ["events.sqlite3-wal"]

    # -- damage to the file itself -----------------------------------------------------------

    def test_a_byte_flipped_in_the_file_is_found(self, open_, url):
        first = open_()
        commit(first, named("a", "Bartholomew"), named("b", "Zebedee"))
        first.close()  # the last connection checkpoints: every byte is in the file itself
        assert not os.path.exists(self.path(url) + "-wal")
        with open(self.path(url), "rb") as f:
            content = f.read()
        assert content.count(b"Bartholomew") == 1
        flip_byte(self.path(url), content.index(b"Bartholomew") + 5)
        again = open_()  # SQLite's own checks see nothing wrong: the page is well formed
        with pytest.raises(StoreCorrupt, match="position 1 does not match its checksum"):
            again.load_stream("accounts", "a")
        with pytest.raises(StoreCorrupt, match="position 1 does not match its checksum"):
            again.read_after(0, 10)

    @staticmethod
    def _store_with_a_damaged_page(url: str, path: str) -> None:
        """A closed store of 3,000 events with the 4 KiB page that holds event 1,500's
        bytes overwritten with random ones, as a failing disk would."""
        s = open_store(url)
        commit(s, *[named(f"s{i}", f"name-{i:05d}") for i in range(3000)])
        page_size = s._db.execute("PRAGMA page_size").fetchone()[0]
        s.close()
        with open(path, "rb") as f:
            offset = f.read().index(b"name-01500")
        with open(path, "r+b") as f:
            f.seek(offset // page_size * page_size)
            f.write(os.urandom(page_size))

    def test_a_page_of_random_bytes_is_refused_when_the_store_is_opened(self, url):
        self._store_with_a_damaged_page(url, self.path(url))
        with pytest.raises(StoreCorrupt, match="is corrupt"):
            open_store(url)

    def test_a_page_of_random_bytes_is_found_by_a_read(self, url):
        """Read-only, the store is not checked when opened: the read that reaches the page
        raises StoreCorrupt, not SQLite's own error."""
        self._store_with_a_damaged_page(url, self.path(url))
        with pytest.raises(StoreCorrupt):
            reader = open_store(url, read_only=True)
            try:
                list(all_events(reader))
            finally:
                reader.close()

    def test_damage_found_while_committing_is_raised_as_such(self, open_, url):
        s = open_()
        commit(s, *[ev(f"s{i:05d}", 1) for i in range(3000)])
        s._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the pages are in the file itself
        other = sqlite3.connect(self.path(url), isolation_level=None)
        (index_page,) = other.execute("SELECT rootpage FROM sqlite_master WHERE name = "
                                      "'sqlite_autoindex_events_1'").fetchone()
        page_size = other.execute("PRAGMA page_size").fetchone()[0]
        with open(self.path(url), "r+b") as f:
            f.seek((index_page - 1) * page_size)
            f.write(os.urandom(page_size))
        # A write by another connection makes the store read its pages from the file again.
        other.execute("PRAGMA user_version = 4")
        other.close()
        with pytest.raises(StoreCorrupt, match="is corrupt: database disk image is malformed"):
            commit(s, ev("new", 1))
        assert s.head == 3000


class TestSQLiteMemory(SQLiteRows, StoreContract):
    reopens = False
    full_options = {"max_pages": 8}

    @pytest.fixture
    def url(self) -> str:
        return "sqlite:///:memory:"

    def db_for(self, store, url):
        return store._db  # the only way in to a store in memory

    def test_the_short_url_is_a_store_in_memory_too(self):
        first, second = open_store("sqlite://"), open_store("sqlite://")
        commit(first, ev("a", 1))
        assert (first.head, second.head) == (1, 0)  # each opening is a store of its own
        first.close()
        second.close()
