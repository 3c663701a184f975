"""Per-stream histories: current state, state as of a position, state as of a time, and pages
of visible streams as of a position."""
import pytest

from read_side.accounts import Account, evolve
from read_side.streams import StreamTable
from read_side.views import visible


def event(position, stream, version, type_, data, when):
    return {"position": position, "stream_id": stream, "version": version, "type": type_,
            "data": data, "recorded_at": when, "context": "accounts", "event_id": "x"}


def table(block=256):
    t = StreamTable(evolve, visible, block)
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


def test_events_as_of_a_position():
    t = table()
    assert [e[2] for e in t.events("u")] == [1, 2, 3]
    assert [e[2] for e in t.events("u", at=3)] == [1, 2]


@pytest.mark.parametrize("block", [1, 2, 3, 256])
def test_visible_page_as_of_a_position(block):
    t = table(block)
    page = t.visible_page
    assert page(0, 10) == [("v", Account("Vera", True))]  # u is deleted now
    assert page(0, 10, at=3) == [("u", Account("John Doe", True)), ("v", Account("Vera", True))]
    assert page(0, 10, at=2) == [("u", Account("John", True)), ("v", Account("Vera", True))]
    assert page(1, 10, at=2) == [("v", Account("Vera", True))]
    assert page(0, 1, at=2) == [("u", Account("John", True))]
    assert page(0, 10, at=1) == [("u", Account("John", True))]
    assert page(1, 10, at=1) == [] and page(0, 10, at=0) == [] and page(1, 10) == []
    assert [t.visible_count(b, at) for at in (0, 1, 2, 3, 4) for b in range(len(t.counts))] == {
        1: [0, 0, 1, 0, 1, 1, 1, 1, 0, 1], 2: [0, 1, 2, 2, 1], 3: [0, 1, 2, 2, 1],
        256: [0, 1, 2, 2, 1]}[block]
