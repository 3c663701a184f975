"""The write side's decisions over a batch, without sockets: group commit and exactly-once."""
import pytest

from common.wire import CommandRequest
from write_side.contexts import load_all
from write_side.decider import Decider
from write_side.store import open_store


@pytest.fixture
def decider():
    d = Decider(open_store("sqlite:///:memory:"), load_all())
    yield d
    d.store.close()


def create(seq, email, name="Ann", cid=None):
    return CommandRequest(seq, "directory", "CreateUser", {"name": name, "email": email},
                          cid or f"n:{seq}", None)


def acc(seq, name, payload, expected=None, cid=None):
    return CommandRequest(seq, "accounts", name, payload, cid or f"n:{seq}", expected)


def test_later_commands_in_a_batch_see_earlier_ones(decider):
    outcomes, stored = decider.run([
        create(1, "a@x.io"), create(2, "A@X.IO"),
        acc(3, "CreateUser", {"id": "u", "name": "U"}),
        acc(4, "RenameUser", {"id": "u", "name": "V"}, expected=1),
        acc(5, "DeleteUser", {"id": "u"}, expected=1),
    ])
    results = [o.result for o in outcomes]
    assert results[0]["success"] is True
    assert results[1] == {"success": False, "errors": ["Email is already registered"]}
    assert results[3] == {"success": True, "events": [{"eventType": "UserRenamed",
                                                        "aggregateId": "u"}]}
    assert results[4] == {"success": False, "errors": ["Expected version 1, got 2"]}
    assert [e.event["position"] for e in stored] == [1, 2, 3]
    assert [o.position for o in outcomes] == [1, 1, 2, 3, 3]  # head right after each command


def test_a_command_id_runs_once_within_and_across_batches(decider):
    first, _ = decider.run([create(1, "a@x.io", cid="c:k"), create(2, "b@x.io", cid="c:k")])
    assert first[0].result == first[1].result
    again, stored = decider.run([create(3, "c@x.io", cid="c:k")])
    assert again[0].result == first[0].result and stored == []
    assert decider.store.head == 1


def test_a_rejected_command_is_remembered_too(decider):
    bad, _ = decider.run([acc(1, "RenameUser", {"id": "nobody", "name": "X"}, cid="c:r")])
    decider.run([acc(2, "CreateUser", {"id": "nobody", "name": "X"})])
    again, _ = decider.run([acc(3, "RenameUser", {"id": "nobody", "name": "X"}, cid="c:r")])
    assert again[0].result == bad[0].result == {"success": False, "errors": ["User not found"]}


def test_a_crashing_handler_costs_one_reply(decider, monkeypatch):
    module = decider.contexts["accounts"]

    def boom(scope, args, expected):
        raise RuntimeError("bug")

    monkeypatch.setitem(module.COMMANDS, "DeleteUser", boom)
    outcomes, stored = decider.run([acc(1, "DeleteUser", {"id": "x"}),
                                    acc(2, "CreateUser", {"id": "y", "name": "Y"})])
    assert outcomes[0].result["error"][0] == 13
    assert outcomes[1].result["success"] is True and len(stored) == 1


def test_a_failed_commit_answers_unavailable_and_forgets_the_batch(decider, monkeypatch):
    from write_side import store as store_module

    def full(self, batch):
        raise store_module.StoreError("database or disk is full")

    decider.run([acc(1, "CreateUser", {"id": "u", "name": "U"})])
    monkeypatch.setattr(type(decider.store), "commit", full)
    outcomes, stored = decider.run([acc(2, "RenameUser", {"id": "u", "name": "V"})])
    assert outcomes[0].result["error"][0] == 11 and stored == []
    monkeypatch.undo()
    # The cached aggregate must not remember the lost rename: version is still 1.
    outcomes, _ = decider.run([acc(3, "RenameUser", {"id": "u", "name": "W"}, expected=1)])
    assert outcomes[0].result["success"] is True


def test_seed_writes_sample_data_once_through_the_append_path(decider):
    seeded = decider.seed()
    assert [(e.event["context"], e.event["type"]) for e in seeded] == [
        ("directory", "UserCreated"), ("accounts", "UserCreated"),
        ("accounts", "UserRenamed"), ("accounts", "UserRenamed")]
    assert seeded[1].event["recorded_at"] == "2024-01-01T00:00:00.000000Z"
    assert decider.seed() == []
    # The sample email is claimed like any other.
    outcomes, _ = decider.run([create(1, "John.Doe@example.com")])
    assert outcomes[0].result["errors"] == ["Email is already registered"]


def test_event_data_the_wire_cannot_carry_costs_only_its_command(decider):
    huge = CommandRequest(1, "directory", "CreateUser",
                          {"name": "Al", "email": "al@x.io", "age": 1e20}, "n:1", None)
    outcomes, stored = decider.run([huge, create(2, "al@x.io")])
    assert outcomes[0].result == {"error": [12, "malformed request: a value is out of range"]}
    assert outcomes[1].result["success"] is True  # the email was never claimed by the bad one
    assert [e.event["position"] for e in stored] == [1]


def test_the_aggregate_cache_is_bounded_and_evicted_streams_come_back_from_the_store(decider):
    decider.cache.capacity = 3
    creates = [acc(i, "CreateUser", {"id": f"u{i}", "name": "A"}) for i in range(10)]
    # One batch touching more streams than the cache holds: its own overlay keeps them.
    renames = [acc(10 + i, "RenameUser", {"id": f"u{i}", "name": "B"}, expected=1)
               for i in range(10)]
    twice = [acc(20 + i, "RenameUser", {"id": f"u{i}", "name": "C"}, expected=2)
             for i in range(10)]
    outcomes, _ = decider.run(creates + renames + twice)
    assert [o.result["success"] for o in outcomes] == [True] * 30
    assert len(decider.cache) == 3
    # Later batches fold evicted streams again from the store, versions included.
    outcomes, _ = decider.run([acc(30 + i, "RenameUser", {"id": f"u{i}", "name": "D"},
                                   expected=3) for i in range(10)])
    assert [o.result["success"] for o in outcomes] == [True] * 10


def test_a_batch_loads_the_streams_it_names_in_one_go(decider, monkeypatch):
    decider.run([acc(i, "CreateUser", {"id": f"u{i}", "name": "A"}) for i in range(5)])
    decider.cache.clear()  # as after a restart: every stream must come from the store

    def one_by_one(*_):
        raise AssertionError("a stream was loaded on its own")

    monkeypatch.setattr(decider.store, "load_stream", one_by_one)
    outcomes, stored = decider.run(
        [acc(10 + i, "RenameUser", {"id": f"u{i}", "name": "B"}, expected=1) for i in range(5)]
        + [acc(20, "CreateUser", {"id": "new", "name": "N"}),
           acc(21, "CreateUser", {"id": "u0", "name": "A"})])  # an idempotent repeat
    assert [o.result["success"] for o in outcomes] == [True] * 7
    assert [e.event["stream_id"] for e in stored] == ["u0", "u1", "u2", "u3", "u4", "new"]


def test_an_email_claimed_and_given_up_in_one_batch_is_not_kept(decider):
    """Set then changed again within one batch: the store must not keep the first email
    (a release applied before the claim it undoes would leave the claim behind)."""
    (made,), _ = decider.run([create(1, "a@x.io")])
    uid = made.result["events"][0]["payload"]["id"]
    change = [CommandRequest(seq, "directory", "ChangeEmail", {"id": uid, "email": email},
                             f"n:{seq}", None) for seq, email in ((2, "b@x.io"), (3, "c@x.io"))]
    outcomes, _ = decider.run(change)
    assert [o.result["success"] for o in outcomes] == [True, True]
    assert decider.store.claim_owner("directory", "email", "b@x.io") is None
    assert decider.store.claim_owner("directory", "email", "a@x.io") is None
    assert decider.store.claim_owner("directory", "email", "c@x.io") == uid
    later, _ = decider.run([create(4, "b@x.io", name="Bob"), create(5, "a@x.io", name="Di")])
    assert [o.result["success"] for o in later] == [True, True]
