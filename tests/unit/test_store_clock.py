"""Time never runs backwards in the store: the write side's clock starts at the store's
last event, and a clock that reads no later stamps one microsecond after it.

The system clock is left alone: the store is given an event from 2999 instead, which
puts every real clock behind it."""
from __future__ import annotations

import pytest

from common import store_url
from common.timefmt import after, now_utc
from common.wire import CommandRequest
from write_side.contexts import load_all
from write_side.decider import Decider
from write_side.store import Commit, NewEvent, open_store

FUTURE = "2999-01-01T00:00:00.000000Z"


@pytest.mark.parametrize("given, want", [
    ("2999-01-01T00:00:00.000000Z", "2999-01-01T00:00:00.000001Z"),
    ("2024-12-31T23:59:59.999999Z", "2025-01-01T00:00:00.000000Z"),
    ("2024-02-28T23:59:59.999999Z", "2024-02-29T00:00:00.000000Z"),
    ("2024-01-10T02:00:00+02:00", "2024-01-10T00:00:00.000001Z"),  # any form canonical reads
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),  # nothing is later
])
def test_after_is_one_microsecond_later(given, want):
    assert after(given) == want


@pytest.mark.parametrize("given", ["not a time", "", "9999-12-31T23:59:59-01:00"])
def test_after_refuses_what_is_no_time(given):
    with pytest.raises(ValueError):
        after(given)


def create(seq: int, user: str) -> CommandRequest:
    return CommandRequest(seq, "accounts", "CreateUser", {"id": user, "name": user.upper()},
                          f"c:accounts:{user}", None)


def future_store(url: str):
    store = open_store(url)
    store.commit(Commit([NewEvent("accounts", "seer", 1, "UserCreated", {"name": "Seer"},
                                  FUTURE)], [], [], []))
    return store


def stamps(stored) -> list[str]:
    return [s.event["recorded_at"] for s in stored]


def test_a_store_from_the_future_stamps_each_batch_strictly_later():
    store = future_store("sqlite://")
    try:
        decider = Decider(store, load_all())
        _, first = decider.run([create(1, "a"), create(2, "b")])
        _, second = decider.run([create(3, "c")])
        _, third = decider.run([create(4, "d")])
    finally:
        store.close()
    # One instant per batch, each one microsecond after the batch before it.
    assert stamps(first) == ["2999-01-01T00:00:00.000001Z"] * 2
    assert stamps(second) == ["2999-01-01T00:00:00.000002Z"]
    assert stamps(third) == ["2999-01-01T00:00:00.000003Z"]


def test_the_clock_starts_at_the_last_event_of_a_reopened_store(tmp_path):
    url = store_url.sqlite_file(str(tmp_path / "events.sqlite3"))
    future_store(url).close()
    store = open_store(url)  # a new write side: it knows the store's last time only from it
    try:
        _, stored = Decider(store, load_all()).run([create(1, "a")])
    finally:
        store.close()
    assert stamps(stored) == ["2999-01-01T00:00:00.000001Z"]


def test_a_clock_ahead_of_the_store_stamps_the_time_it_reads():
    store = open_store("sqlite://")
    try:
        store.commit(Commit([NewEvent("accounts", "old", 1, "UserCreated", {"name": "Old"},
                                      "2024-01-01T00:00:00.000000Z")], [], [], []))
        before = now_utc()
        _, stored = Decider(store, load_all()).run([create(1, "a")])
        assert before <= stamps(stored)[0] <= now_utc()
    finally:
        store.close()
