"""One contract for the event store, run against every kind of store we use."""
import sqlite3

import pytest

from write_side.store import Commit, EventStore, NewEvent, StoreError, all_events


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path):
    path = str(tmp_path / "events.sqlite3") if request.param == "file" else ":memory:"
    s = EventStore(path)
    yield s
    s.close()


def ev(stream, version, type_="UserCreated", data=None, context="accounts"):
    return NewEvent(context, stream, version, type_, data or {"name": stream},
                    f"2024-01-0{version}T00:00:00.000000Z")


def commit(store, *events, commands=(), claims=(), releases=()):
    return store.commit(Commit(list(events), list(commands), list(claims), list(releases)))


def test_positions_are_gap_free_across_commits(store):
    first = commit(store, ev("a", 1), ev("b", 1))
    second = commit(store, ev("a", 2, "UserRenamed"))
    assert [e.event["position"] for e in first + second] == [1, 2, 3]
    assert store.head == 3


def test_stored_event_has_every_field(store):
    (stored,) = commit(store, ev("a", 1))
    assert set(stored.event) == {"position", "context", "stream_id", "version", "type", "data",
                                 "recorded_at", "event_id"}
    assert stored.event["data"] == {"name": "a"}
    assert store.load_stream("accounts", "a") == [stored.event]
    assert store.bodies_after(0, 10) == [stored.body]


def test_stream_version_is_unique_and_a_conflict_stores_nothing(store):
    commit(store, ev("a", 1))
    with pytest.raises(StoreError):
        commit(store, ev("b", 1), ev("a", 1))
    assert store.head == 1
    assert store.load_stream("accounts", "b") == []


def test_same_stream_id_in_two_contexts_is_two_streams(store):
    commit(store, ev("a", 1), ev("a", 1, context="directory"))
    assert len(store.load_stream("accounts", "a")) == 1
    assert len(store.load_stream("directory", "a")) == 1


def test_commands_are_kept_with_their_results(store):
    commit(store, ev("a", 1), commands=[("n:1", {"success": True, "events": []}, 1)])
    assert store.find_command("n:1") == ({"success": True, "events": []}, 1)
    assert store.find_command("n:2") is None
    with pytest.raises(StoreError):
        commit(store, commands=[("n:1", {}, 1)])


def test_claims_and_releases(store):
    commit(store, claims=[("directory", "email", "a@x.io", "u1")])
    assert store.find_unique("directory", "email", "a@x.io") == "u1"
    commit(store, releases=[("directory", "email", "a@x.io")])
    assert store.find_unique("directory", "email", "a@x.io") is None


def test_read_after_pages_in_order(store):
    commit(store, *[ev(f"s{i}", 1) for i in range(25)])
    assert [e["position"] for e in store.read_after(10, 5)] == [11, 12, 13, 14, 15]
    assert [e["position"] for e in all_events(store, chunk=7)] == list(range(1, 26))


def test_reopening_a_file_store_keeps_everything(tmp_path):
    path = str(tmp_path / "events.sqlite3")
    s = EventStore(path)
    commit(s, ev("a", 1), ev("a", 2, "UserRenamed"))
    s.close()
    again = EventStore(path)
    assert again.head == 2
    assert [e["version"] for e in again.load_stream("accounts", "a")] == [1, 2]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_a_full_store_refuses_the_batch_and_keeps_what_it_had(tmp_path):
    s = EventStore(str(tmp_path / "events.sqlite3"), max_pages=8)
    commit(s, ev("a", 1))
    with pytest.raises(StoreError, match="full"):
        commit(s, *[NewEvent("accounts", f"b{i}", 1, "UserCreated", {"name": "x" * 2000},
                             "2024-01-01T00:00:00.000000Z") for i in range(50)])
    assert s.head == 1
    assert [e["stream_id"] for e in s.read_after(0, 10)] == ["a"]
    s.close()
