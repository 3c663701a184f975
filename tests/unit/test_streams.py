"""Per-stream histories: current state, state as of a position, state as of a time."""
from read_side.accounts import Account, evolve
from read_side.streams import StreamTable


def event(position, stream, version, type_, data, when):
    return {"position": position, "stream_id": stream, "version": version, "type": type_,
            "data": data, "recorded_at": when, "context": "accounts", "event_id": "x"}


def table():
    t = StreamTable(evolve)
    t.apply(event(1, "u", 1, "UserCreated", {"name": "John"}, "2024-01-01T00:00:00.000000Z"))
    t.apply(event(2, "v", 1, "UserCreated", {"name": "Vera"}, "2024-01-05T00:00:00.000000Z"))
    t.apply(event(3, "u", 2, "UserRenamed", {"name": "John Doe"}, "2024-01-10T00:00:00.000000Z"))
    t.apply(event(4, "u", 3, "UserDeleted", {}, "2024-02-01T00:00:00.000000Z"))
    return t


def test_current_state_and_state_as_of_a_position():
    t = table()
    assert t.state("u") == Account(name="John Doe", active=False)
    assert t.state("u", at=3) == Account(name="John Doe", active=True)
    assert t.state("u", at=2) == Account(name="John", active=True)
    assert t.state("v", at=1) is None
    assert t.state("nobody") is None


def test_state_at_time_bisects_on_recorded_at():
    t = table()
    assert t.state_at_time("u", "2023-12-31T23:59:59.999999Z") is None
    assert t.state_at_time("u", "2024-01-10T00:00:00.000000Z").name == "John Doe"
    assert t.state_at_time("u", "2024-01-09T23:59:59.999999Z").name == "John"
    assert t.state_at_time("u", "2030-01-01T00:00:00.000000Z").active is False
    assert t.state_at_time("u", "2030-01-01T00:00:00.000000Z", at=3).active is True


def test_states_in_creation_order_as_of_a_position():
    t = table()
    assert [sid for sid, _ in t.states()] == ["u", "v"]
    assert [sid for sid, _ in t.states(at=1)] == ["u"]


def test_events_as_of_a_position():
    t = table()
    assert [e[2] for e in t.events("u")] == [1, 2, 3]
    assert [e[2] for e in t.events("u", at=3)] == [1, 2]
