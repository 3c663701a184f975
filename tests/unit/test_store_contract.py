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
    """Ids in the router's own form (n:<boot>:<seq>) are covered below."""
    commit(store, ev("a", 1), commands=[("n:1", {"success": True, "events": []}, 1)])
    assert store.find_command("n:1") == ({"success": True, "events": []}, 1)
    assert store.find_command("n:2") is None
    with pytest.raises(StoreError):
        commit(store, commands=[("n:1", {}, 1)])


@pytest.mark.parametrize("command_id", ["n:b0ot:7", "c:accounts:n:b0ot:7", "n:7", "n:b0ot:x"])
def test_every_id_form_is_kept(store, command_id):
    commit(store, ev("a", 1), commands=[(command_id, {"success": True, "events": []}, 1)])
    assert store.find_commands([command_id]) == {command_id: ({"success": True, "events": []}, 1)}
    with pytest.raises(StoreError):
        commit(store, commands=[(command_id, {}, 1)])


def test_router_ids_are_found_by_seq_in_any_batch(store):
    ok = {"success": True, "events": []}
    commit(store, commands=[(f"n:r1:{s}", {"n": s}, s) for s in (1, 2, 5)])
    commit(store, commands=[("n:r1:3", ok, 6), ("n:r2:3", {"other": 1}, 6), ("n:r1:9", ok, 7)])
    asked = [f"n:r1:{s}" for s in range(12)] + ["n:r2:3", "n:r3:3", "c:x:n:r1:1"]
    assert store.find_commands(asked) == {
        "n:r1:1": ({"n": 1}, 1), "n:r1:2": ({"n": 2}, 2), "n:r1:5": ({"n": 5}, 5),
        "n:r1:3": (ok, 6), "n:r1:9": (ok, 7), "n:r2:3": ({"other": 1}, 6)}


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
    commit(s, ev("a", 1), ev("a", 2, "UserRenamed"),
           commands=[("n:r:1", {"r": 1}, 2), ("c:accounts:k", {"k": 1}, 2)],
           claims=[("accounts", "email", "a@x.io", "a")])
    s.close()
    again = EventStore(path)
    assert again.head == 2
    assert again.find_commands(["n:r:1", "c:accounts:k"]) == {"n:r:1": ({"r": 1}, 2),
                                                              "c:accounts:k": ({"k": 1}, 2)}
    assert again.find_unique("accounts", "email", "a@x.io") == "a"
    assert [e["version"] for e in again.load_stream("accounts", "a")] == [1, 2]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_a_store_of_another_format_is_refused_with_a_clear_message(tmp_path):
    path = str(tmp_path / "events.sqlite3")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, type TEXT)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="has format 1, this node reads format"):
        EventStore(path)


def test_a_full_store_refuses_the_batch_and_keeps_what_it_had(tmp_path):
    s = EventStore(str(tmp_path / "events.sqlite3"), max_pages=8)
    commit(s, ev("a", 1))
    with pytest.raises(StoreError, match="full"):
        commit(s, *[NewEvent("accounts", f"b{i}", 1, "UserCreated", {"name": "x" * 2000},
                             "2024-01-01T00:00:00.000000Z") for i in range(50)])
    assert s.head == 1
    assert [e["stream_id"] for e in s.read_after(0, 10)] == ["a"]
    s.close()


def test_load_streams_returns_each_streams_events_in_order(store):
    commit(store, ev("a", 1), ev("b", 1), ev("a", 2, "UserRenamed"),
           ev("a", 1, context="directory"))
    commit(store, *[ev(f"s{i}", 1) for i in range(600)])  # more than one query's worth
    asked = ["a", "b", "nobody"] + [f"s{i}" for i in range(600)]
    found = store.load_streams("accounts", asked)
    assert set(found) == set(asked) - {"nobody"}
    assert [(e["version"], e["type"]) for e in found["a"]] == [(1, "UserCreated"),
                                                              (2, "UserRenamed")]
    assert found["a"] == store.load_stream("accounts", "a")


def test_creating_a_store_is_all_or_nothing(tmp_path, monkeypatch):
    """A store whose creation failed half-way (as when its process is killed then) is
    created whole by the next start, not refused as a foreign format."""
    from write_side import store as store_module

    path = str(tmp_path / "events.sqlite3")
    broken = store_module._SCHEMA + "CREATE TABLE events (x INTEGER);"  # fails after the rest
    monkeypatch.setattr(store_module, "_SCHEMA", broken)
    with pytest.raises(StoreError):
        EventStore(path)
    monkeypatch.undo()
    s = EventStore(path)
    commit(s, ev("a", 1))
    assert s.head == 1
    s.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == \
        store_module.FORMAT
