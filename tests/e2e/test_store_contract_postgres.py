"""The store contract on PostgreSQL (a real server: tests/support/postgres.py), and what only
a store shared by several write sides has to keep: gap-free positions in commit order
under concurrent writers, conflicts found at commit, a lost server and a lost COMMIT.

It lives in tests/e2e because the server is a process; the contract itself is
tests/unit/test_store_contract.py.
"""
from __future__ import annotations

import threading
from typing import Iterator

import pytest

from tests.support.nodeproc import wait_until
from tests.support.postgres import Cluster
from tests.unit.test_store_contract import OK, StoreContract, commit, ev
from write_side.store import (EventStore, StoreConflict, StoreError, StoreOutcomeUnknown,
                              all_events, open_store)
from write_side.store import postgres as engine

psycopg = pytest.importorskip("psycopg")


def sql(url: str, statement: str, *params) -> list[tuple]:
    """One statement on a connection of its own (as another program would run it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


class TestPostgreSQL(StoreContract):
    foreign_format = 2  # PostgreSQL stores are format 1: a later one is what gets refused

    @pytest.fixture
    def url(self, postgres_cluster: Cluster) -> str:
        return postgres_cluster.new_database()

    # -- the contract's hooks ------------------------------------------------------------

    def make_foreign_store(self, url: str) -> None:
        open_store(url).close()
        sql(url, "UPDATE cqrs_format SET format = 2")
        sql(url, "INSERT INTO events VALUES (1, 'accounts', 'a', 1, '\\x80', '\\x00')")

    def change_stored_bytes(self, store, url, position, old, new):
        assert len(old) == len(new)
        ((body,),) = sql(url, "SELECT body FROM events WHERE position = %s", position)
        assert bytes(body).count(old) == 1
        assert sql(url, "UPDATE events SET body = %s WHERE position = %s RETURNING 1",
                   bytes(body).replace(old, new), position)

    def remove_stored_event(self, store, url, position):
        assert sql(url, "DELETE FROM events WHERE position = %s RETURNING 1", position)

    def refile_stored_event(self, store, url, position, stream_id):
        assert sql(url, "UPDATE events SET stream_id = %s WHERE position = %s RETURNING 1",
                   stream_id, position)

    # -- the schema ------------------------------------------------------------------------

    def test_the_schema_is_the_agreed_one(self, store, url):
        """The columns the read sides read (common.catchup_sources), and a checksum of 4
        bytes that is the SQLite engine's integer, big-endian."""
        from common.checksum import checksum

        columns = sql(url, "SELECT column_name, data_type, is_nullable FROM "
                           "information_schema.columns WHERE table_name = 'events' "
                           "ORDER BY ordinal_position")
        assert columns == [("position", "bigint", "NO"), ("context", "text", "NO"),
                           ("stream_id", "text", "NO"), ("version", "integer", "NO"),
                           ("body", "bytea", "NO"), ("checksum", "bytea", "NO")]
        (stored,) = commit(store, ev("a", 1))
        ((body, stored_sum),) = sql(url, "SELECT body, checksum FROM events")
        assert bytes(body) == stored.body
        assert bytes(stored_sum) == checksum(stored.body).to_bytes(4, "big")
        assert sql(url, "SELECT position, commits FROM head") == [(1, 1)]
        assert sql(url, "SELECT format FROM cqrs_format") == [(engine.FORMAT,)]

    def test_tables_without_a_format_stamp_are_refused_and_left(self, url):
        sql(url, "CREATE TABLE events (position BIGINT PRIMARY KEY, body BYTEA)")
        for options in ({}, {"read_only": True}):
            with pytest.raises(StoreError, match=r"has tables \(events\) but no format stamp"):
                open_store(url, **options)
        assert sql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(1,)]

    def test_reading_a_database_without_a_store_creates_nothing(self, url):
        with pytest.raises(StoreError, match="holds no event store yet"):
            open_store(url, read_only=True)
        assert sql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]

    def test_write_sides_starting_together_make_the_tables_once(self, url):
        opened: list[EventStore] = []
        failures: list[BaseException] = []
        start = threading.Barrier(4)

        def open_one() -> None:
            start.wait(10)
            try:
                opened.append(open_store(url))
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        try:
            assert not failures and len(opened) == 4
            assert sql(url, "SELECT count(*) FROM cqrs_format") == [(1,)]
            assert sql(url, "SELECT count(*) FROM head") == [(1,)]
        finally:
            for s in opened:
                s.close()

    def test_a_server_that_cannot_be_reached_is_a_store_error_without_the_password(
            self, postgres_cluster):
        url = postgres_cluster.url("nosuchdb").replace("postgres@", "postgres:s3cret@")
        with pytest.raises(StoreError) as refused:
            open_store(url)
        assert "cannot connect to the database postgresql://postgres@127.0.0.1:" in \
            str(refused.value)
        assert 'database "nosuchdb" does not exist' in str(refused.value)
        assert "s3cret" not in str(refused.value)

    # -- several write sides -----------------------------------------------------------------

    @pytest.fixture
    def two(self, open_) -> tuple[EventStore, EventStore]:
        return open_(), open_()

    def test_each_write_side_sees_the_others_events_at_commit(self, two):
        a, b = two
        commit(a, ev("x", 1), ev("y", 1))
        assert b.head == 0  # b has not committed since: it knows nothing yet
        (stored,) = commit(b, ev("z", 1), commands=[("c:z", OK, 1)])
        # Planned at position 1 (b's head was 0), stored at 3: the result moved with it.
        assert stored.event["position"] == 3 and b.head == 3
        assert b.find_command("c:z") == (OK, 3)
        assert b.stale_streams() == {("accounts", "x"), ("accounts", "y")}
        assert b.stale_streams() == set()  # said once
        assert a.stale_streams() == set()

    def test_a_stream_changed_by_another_write_side_is_a_conflict(self, two):
        a, b = two
        commit(a, ev("x", 1))
        commit(b, ev("other", 1))  # b now knows x at version 1
        # b decides on x at version 1 while a writes version 2, then 3: b's batch writes x,
        # then only reads it (a refusal, stored as a command result): both are refused.
        for version, events, reads in ((2, [ev("x", 2, "UserRenamed")], []),
                                       (3, [], [("accounts", "x")])):
            commit(a, ev("x", version, "UserRenamed"))
            with pytest.raises(StoreConflict, match="it changed stream x"):
                b.commit(_batch(events, commands=[("c:b", OK, 2)], reads=reads))
            assert b.stale_streams() == {("accounts", "x")}
        assert b.find_command("c:b") is None
        # Decided again on fresh state, it goes through.
        (stored,) = commit(b, ev("x", 4, "UserRenamed"))
        assert stored.event["position"] == 5
        assert [e["version"] for e in b.load_stream("accounts", "x")] == [1, 2, 3, 4]

    def test_a_claim_taken_by_another_write_side_is_a_conflict(self, two):
        a, b = two
        commit(a, ev("u1", 1, context="directory"),
               claims=[("directory", "email", "e@x.io", "u1")])
        assert b.claim_owner("directory", "email", "e@x.io") is None  # b's memory is behind
        with pytest.raises(StoreConflict, match="claim on email 'e@x.io'"):
            commit(b, ev("u2", 1, context="directory"),
                   claims=[("directory", "email", "e@x.io", "u2")])
        b.stale_streams()
        assert b.claim_owner("directory", "email", "e@x.io") == "u1"  # now it knows

    def test_a_claim_given_up_elsewhere_is_seen(self, two):
        """b refused a command because the email was taken; a released it meanwhile: the
        refusal is decided again, not stored."""
        a, b = two
        commit(a, ev("u1", 1, context="directory"),
               claims=[("directory", "email", "e@x.io", "u1")])
        commit(b, ev("other", 1))
        assert b.claim_owner("directory", "email", "e@x.io") == "u1"
        commit(a, ev("u1", 2, "UserEmailChanged", context="directory"),
               releases=[("directory", "email", "e@x.io")],
               claims=[("directory", "email", "f@x.io", "u1")])
        with pytest.raises(StoreConflict, match="claim on email"):
            commit(b, commands=[("c:refused", OK, 2)])
        b.stale_streams()
        assert b.claim_owner("directory", "email", "e@x.io") is None
        assert b.claim_owner("directory", "email", "f@x.io") == "u1"

    def test_a_claim_is_held_once_whatever_the_memory_says(self, two):
        """Even with no commit between to tell b, the database's constraint refuses a
        second holder."""
        a, b = two
        b.claim_owner("directory", "email", "e@x.io")
        commit(a, claims=[("directory", "email", "e@x.io", "u1")])
        b.stale_streams()  # b forgets it looked the claim up: only the constraint is left
        with pytest.raises(StoreConflict):
            commit(b, claims=[("directory", "email", "e@x.io", "u2")])
        assert open_store_reader(a).claim_owner("directory", "email", "e@x.io") == "u1"

    def test_a_router_command_run_by_another_write_side_is_a_conflict(self, two):
        """The router re-sent n:boot:7 to b after a went silent, and a stored it after all."""
        a, b = two
        commit(b, ev("other", 1))
        # a planned its batch at position 1 (its head was 0); stored at 2, its results say 2.
        commit(a, ev("x", 1), commands=[("n:boot:7", OK, 1), ("n:boot:8", OK, 1)])
        with pytest.raises(StoreConflict, match="it ran command n:boot:7"):
            commit(b, ev("y", 1), commands=[("n:boot:7", OK, 2), ("n:boot:9", OK, 2)])
        assert b.find_commands(["n:boot:7", "n:boot:9"]) == {"n:boot:7": (OK, 2)}

    def test_a_write_side_far_behind_reads_first_without_holding_the_others(self, two,
                                                                          monkeypatch):
        """Behind by more than FAR_BEHIND events, a commit does not read them while it holds
        the head row: it reads them after its rollback and the batch is decided again."""
        monkeypatch.setattr(engine, "FAR_BEHIND", 10)
        a, b = two
        commit(a, *[ev(f"s{i}", 1, context="directory") for i in range(30)],
               claims=[("directory", "email", "s7@x.io", "s7")])
        with pytest.raises(StoreConflict, match="stored 30 events since"):
            commit(b, ev("mine", 1))
        assert b.head == 30 and b.find_command("c:mine") is None
        assert b.stale_streams() == {("directory", f"s{i}") for i in range(30)}
        assert b.claim_owner("directory", "email", "s7@x.io") == "s7"
        (stored,) = commit(b, ev("mine", 1), commands=[("c:mine", OK, 31)])
        assert stored.event["position"] == 31 and b.find_command("c:mine") == (OK, 31)

    def test_concurrent_writers_give_gap_free_positions_in_commit_order(self, url):
        """Four writers commit 60 batches each as fast as they can: every position is used
        once, each batch's are consecutive, and the order of positions is the order of
        commits (each event's recorded_at is its writer's commit count)."""
        writers, batches = 4, 60
        failures: list[BaseException] = []
        stored_by: dict[int, list[list[int]]] = {w: [] for w in range(writers)}
        start = threading.Barrier(writers)

        def write(w: int) -> None:
            store = open_store(url)
            try:
                start.wait(10)
                for n in range(batches):
                    events = [ev(f"w{w}-{n}-{i}", 1) for i in range(1 + n % 3)]
                    # Planned as the decider plans: the head it knows, plus its events.
                    planned = store.head + len(events)
                    stored = commit(store, *events, commands=[(f"c:w{w}-{n}", OK, planned)])
                    stored_by[w].append([s.event["position"] for s in stored])
            except BaseException as exc:  # reported below
                failures.append(exc)
            finally:
                store.close()

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not failures, failures
        total = writers * sum(1 + n % 3 for n in range(batches))
        reader = open_store(url, read_only=True)
        try:
            positions = [e["position"] for e in all_events(reader, chunk=97)]
            assert positions == list(range(1, total + 1))
            for w in range(writers):
                for n, got in enumerate(stored_by[w]):
                    assert got == list(range(got[0], got[0] + len(got)))
                    # The command's result names the batch's last position.
                    assert reader.find_command(f"c:w{w}-{n}") == (OK, got[-1])
                # A writer's batches are in its own commit order too.
                assert [b[0] for b in stored_by[w]] == sorted(b[0] for b in stored_by[w])
            assert reader.head == total
        finally:
            reader.close()

    # -- a server that goes away ----------------------------------------------------------

    def test_a_lost_server_fails_the_batch_and_the_next_one_after_it_is_back_works(
            self, postgres_cluster, url, open_):
        store = open_()
        commit(store, ev("a", 1))
        postgres_cluster.stop_server()
        try:
            with pytest.raises(StoreError) as failed:
                commit(store, ev("b", 1))
            assert not isinstance(failed.value, (StoreConflict, StoreOutcomeUnknown))
            with pytest.raises(StoreError, match="cannot connect to the database"):
                store.load_stream("accounts", "a")
        finally:
            postgres_cluster.start_server()
        # The dead connection is replaced at the next use: the server is back, so it works.
        (stored,) = commit(store, ev("b", 1))
        assert stored.event["position"] == 2
        assert [e["stream_id"] for e in store.read_after(0, 10)] == ["a", "b"]

    def test_a_connection_lost_during_commit_is_an_unknown_outcome(self, postgres_cluster,
                                                                   url, open_):
        """COMMIT held up (a synchronous standby that never answers), then the connection
        ended: the batch is stored or not, the store cannot say, and says so. It was
        stored here (PostgreSQL had committed it locally): the next commit finds it."""
        store = open_()
        commit(store, ev("a", 1))
        admin = postgres_cluster.url("postgres")
        outcome: list[BaseException] = []
        try:
            hold_commits(admin, True)

            def hung_commit() -> None:
                try:
                    commit(store, ev("b", 1), commands=[("c:b", OK, 2)])
                except BaseException as exc:  # checked below
                    outcome.append(exc)

            thread = threading.Thread(target=hung_commit)
            thread.start()
            assert wait_until(lambda: held(admin), 30)
            sql(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE wait_event = 'SyncRep'")
            thread.join(30)
        finally:
            hold_commits(admin, False)
        assert len(outcome) == 1 and isinstance(outcome[0], StoreOutcomeUnknown), outcome
        assert "may or may not be stored" in str(outcome[0])
        (stored,) = commit(store, ev("c", 1))
        assert stored.event["position"] == 3
        assert store.find_command("c:b") == (OK, 2)
        assert store.stale_streams() == {("accounts", "b")}

    def test_a_commit_that_fails_at_commit_stores_nothing(self, url, open_):
        """The other way a COMMIT ends: refused by the database (a deferred check that fails
        only then). The batch is known not stored: an ordinary StoreError."""
        store = open_()
        commit(store, ev("a", 1))
        sql(url, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN IF NEW.stream_id = 'refused' THEN RAISE EXCEPTION 'no'; END IF; "
                 "RETURN NULL; END $$")
        sql(url, "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON events "
                 "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()")
        with pytest.raises(StoreError) as failed:
            commit(store, ev("refused", 1), commands=[("c:r", OK, 2)])
        assert not isinstance(failed.value, (StoreOutcomeUnknown, StoreConflict))
        assert store.find_command("c:r") is None and store.head == 1
        (stored,) = commit(store, ev("b", 1))
        assert stored.event["position"] == 2


def held(admin: str) -> bool:
    """Whether a commit is waiting for the synchronous standby."""
    return bool(sql(admin, "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep'"))


def hold_commits(admin: str, on: bool) -> None:
    """Make every commit wait for a synchronous standby that does not exist (on), or not.

    The server takes the setting in after its reload at its own pace, so this returns once
    a probe commit on a connection of its own shows it in force: held (on), or done."""
    sql(admin, "CREATE TABLE IF NOT EXISTS sync_probe (x INTEGER)")
    sql(admin, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'" if on else
        "ALTER SYSTEM RESET synchronous_standby_names")
    sql(admin, "SELECT pg_reload_conf()")

    def in_force() -> bool:
        done = threading.Event()

        def probe() -> None:
            try:
                # A row written: a commit record to wait for (a transaction that wrote
                # nothing does not wait).
                sql(admin, "INSERT INTO sync_probe VALUES (1)")
            except psycopg.Error:
                pass  # ended by the terminate below
            finally:
                done.set()

        thread = threading.Thread(target=probe)
        thread.start()
        assert wait_until(lambda: done.is_set() or held(admin), 30)
        was_held = not done.is_set()
        sql(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE wait_event = 'SyncRep'")
        thread.join(30)
        return was_held == on

    assert wait_until(in_force, 30), f"synchronous_standby_names not in force ({on})"


# ---- two write sides deciding on one store (write_side.decider) ---------------------------

def _deciders(url: str, count: int = 2) -> list:
    from write_side.contexts import load_all
    from write_side.decider import Decider

    return [Decider(open_store(url), load_all()) for _ in range(count)]


def _acc(seq: int, name: str, payload: dict, cid: str | None = None):
    from common.wire import CommandRequest

    return CommandRequest(seq, "accounts", name, payload, cid or f"n:w:{seq}", None)


def test_a_refusal_decided_on_stale_state_is_decided_again(postgres_store):
    """b has cached that acc-1 does not exist; a creates it; b's rename of it is refused as
    b decided it, but the store refuses that refusal (a changed the stream it read), and b
    decides it again on fresh state: the rename succeeds, at the position it is stored."""
    a, b = _deciders(postgres_store)
    try:
        first, _ = b.run([_acc(1, "RenameUser", {"id": "acc-1", "name": "X"}, "c:early")])
        assert first[0].result == {"success": False, "errors": ["User not found"]}
        made, _ = a.run([_acc(2, "CreateUser", {"id": "acc-1", "name": "Ann"})])
        assert made[0].result["success"] is True and made[0].position == 1
        (renamed,), stored = b.run([_acc(3, "RenameUser", {"id": "acc-1", "name": "Bea"})])
        assert renamed.result["success"] is True, renamed
        assert renamed.position == 2 and [s.event["position"] for s in stored] == [2]
        assert b.store.find_command("n:w:3") == (renamed.result, 2)
        # The stored refusal stays the answer to its id.
        (again,), _ = b.run([_acc(4, "RenameUser", {"id": "acc-1", "name": "Y"}, "c:early")])
        assert again.result == first[0].result
    finally:
        for d in (a, b):
            d.store.close()


def test_an_email_claimed_by_another_write_side_is_refused_after_a_retry(postgres_store):
    from common.wire import CommandRequest

    def register(seq: int, name: str) -> CommandRequest:
        return CommandRequest(seq, "directory", "CreateUser",
                              {"name": name, "email": "e@x.io"}, f"n:w:{seq}", None)

    a, b = _deciders(postgres_store)
    try:
        b.seed()
        assert b.store.claim_owner("directory", "email", "e@x.io") is None
        (won,), _ = a.run([register(1, "Ann")])
        (lost,), stored = b.run([register(2, "Bob")])
        assert won.result["success"] is True
        assert lost.result == {"success": False, "errors": ["Email is already registered"]}
        assert stored == []
    finally:
        for d in (a, b):
            d.store.close()


def test_write_sides_starting_together_seed_once(postgres_store):
    deciders = _deciders(postgres_store, 3)
    try:
        seeded = [d.seed() for d in deciders]
        assert [bool(s) for s in seeded] == [True, False, False]
        reader = open_store(postgres_store, read_only=True)
        try:
            assert reader.head == len(seeded[0])
        finally:
            reader.close()
    finally:
        for d in deciders:
            d.store.close()


def _batch(events, commands=(), claims=(), releases=(), reads=()):
    from write_side.store import Commit

    return Commit(list(events), list(commands), list(claims), list(releases), list(reads))


def open_store_reader(store) -> EventStore:
    return open_store(store._url, read_only=True)


@pytest.fixture(scope="module", autouse=True)
def _cluster_is_up(postgres_cluster: Cluster) -> Iterator[None]:
    """A test that stops the server starts it again; this says so loudly if one did not."""
    yield
    sql(postgres_cluster.url("postgres"), "SELECT 1")
