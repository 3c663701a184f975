"""The monitor's bounded stream histories and its generic fold (monitor.streams)."""
from __future__ import annotations

from monitor.streams import StreamHistories, state_at


def event(position: int, stream: str, version: int, type_: str, data: dict,
          at: str = "2024-01-01T00:00:00.000000Z", context: str = "accounts") -> dict:
    return {"position": position, "context": context, "stream_id": stream, "version": version,
            "type": type_, "data": data, "recorded_at": at, "event_id": f"e{position}"}


SAMPLE = [event(1, "user-123", 1, "UserCreated", {"name": "John"},
                "2024-01-01T00:00:00.000000Z"),
          event(2, "user-123", 2, "UserRenamed", {"name": "John Doe"},
                "2024-01-10T00:00:00.000000Z"),
          event(3, "user-123", 3, "UserRenamed", {"name": "John"},
                "2024-02-01T00:00:00.000000Z")]


def test_a_stream_seen_from_its_first_event_is_complete_and_folds_at_any_time():
    histories = StreamHistories()
    for e in SAMPLE:
        histories.add(e)
    held = histories.get(("accounts", "user-123"))
    assert held.complete and [e["version"] for e in held.events] == [1, 2, 3]
    assert "event_id" not in held.events[0]  # the page is shown what it reads, no more
    assert state_at(held.events, "2023-12-31T23:59:59.999999Z") is None
    assert state_at(held.events, "2024-01-15T00:00:00.000000Z") == {
        "version": 2, "last_event": "UserRenamed", "updated_at": "2024-01-10T00:00:00.000000Z",
        "fields": {"name": "John Doe"}}
    # An event recorded exactly at the time asked is part of the state then.
    assert state_at(held.events, "2024-02-01T00:00:00.000000Z")["fields"] == {"name": "John"}


def test_a_stream_joined_late_or_with_a_missing_version_is_incomplete():
    histories = StreamHistories()
    histories.add(SAMPLE[1])
    assert not histories.get(("accounts", "user-123")).complete
    other = StreamHistories()
    other.add(SAMPLE[0])
    other.add(SAMPLE[2])  # version 2 never came
    assert not other.get(("accounts", "user-123")).complete


def test_streams_are_bounded_and_the_least_recently_changed_go_first():
    histories = StreamHistories(max_streams=2, max_events=100, max_per_stream=100)
    for n, name in enumerate(["a", "b", "c"], start=1):
        histories.add(event(n, name, 1, "UserCreated", {"name": name}))
    assert histories.get(("accounts", "a")) is None
    assert [s["stream_id"] for s in histories.recent()] == ["c", "b"]
    histories.add(event(4, "b", 2, "UserRenamed", {"name": "B"}))
    histories.add(event(5, "d", 1, "UserCreated", {"name": "d"}))
    assert [s["stream_id"] for s in histories.recent()] == ["d", "b"]  # c was older


def test_events_are_bounded_overall_and_per_stream():
    histories = StreamHistories(max_streams=100, max_events=5, max_per_stream=3)
    for version in range(1, 5):
        histories.add(event(version, "long", version, "UserRenamed", {"name": str(version)}))
    held = histories.get(("accounts", "long"))
    assert [e["version"] for e in held.events] == [2, 3, 4] and not held.complete
    for n in range(3):
        histories.add(event(10 + n, f"s{n}", 1, "UserCreated", {}))
    assert histories.event_count <= 5
    assert histories.get(("accounts", "long")) is None  # evicted whole, oldest first


def test_a_replayed_stream_replaces_what_was_held():
    histories = StreamHistories(max_per_stream=2)
    histories.add(SAMPLE[2])
    histories.replace(("accounts", "user-123"), SAMPLE[:2])
    held = histories.get(("accounts", "user-123"))
    assert held.complete and [e["version"] for e in held.events] == [1, 2]
    histories.replace(("accounts", "user-123"), SAMPLE)  # longer than the bound: its latest
    held = histories.get(("accounts", "user-123"))
    assert not held.complete and [e["version"] for e in held.events] == [2, 3]
    assert histories.event_count == 2


def test_recent_filters_by_context_and_prefix():
    histories = StreamHistories()
    histories.add(event(1, "user-1", 1, "UserCreated", {}, context="accounts"))
    histories.add(event(2, "abc", 1, "UserCreated", {}, context="directory"))
    histories.add(event(3, "user-2", 1, "UserCreated", {}, context="accounts"))
    assert [s["stream_id"] for s in histories.recent("accounts")] == ["user-2", "user-1"]
    assert [s["stream_id"] for s in histories.recent("", "ab")] == ["abc"]
    assert histories.recent("accounts", "user-1")[0] == {
        "context": "accounts", "stream_id": "user-1", "version": 1, "type": "UserCreated",
        "recorded_at": "2024-01-01T00:00:00.000000Z"}
