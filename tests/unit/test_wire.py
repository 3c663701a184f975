"""common.wire: every record round-trips, and every decoder refuses what it is not."""
import logging

import msgpack
import pytest

from common import wire
from common.errors import INT64_MAX

EVENT = {"position": 7, "context": "accounts", "stream_id": "u", "version": 1,
         "type": "UserCreated", "data": {"name": "A"}, "recorded_at": "2024-01-01T00:00:00.000000Z",
         "event_id": "e"}


def body(frames: list[bytes]) -> bytes:
    return frames[1]


def test_records_round_trip():
    commands = [wire.CommandRequest(1, "accounts", "CreateUser", {"id": "u"}, "n:b:1", None),
                wire.CommandRequest(2, "directory", "RenameUser", None, "c:x", 3)]
    assert wire.command_requests(body(wire.message(wire.COMMANDS, commands))) == commands
    results = [wire.CommandResult(1, {"success": True, "events": []}, 4),
               wire.CommandResult(2, {"error": [11, "temporarily unavailable: x"]}, 4)]
    assert wire.command_results(body(wire.message(wire.RESULTS, results))) == results
    queries = [wire.QueryRequest(5, "accounts", "GetUser", {"userId": "u"}, 4)]
    assert wire.query_requests(body(wire.message(wire.QUERIES, queries))) == queries
    answers = wire.Answers(9, [wire.QueryAnswer(5, {"json": "null"})])
    assert wire.answers(body(wire.message(wire.ANSWERS, answers))) == answers
    report = wire.Report("read", 42, True, 9, {"queries": 1})
    assert wire.report(body(wire.message(wire.STATUS, report)), "read") == report
    shared = wire.Report("write", 43, True, 9, {}, exclusive=False)
    assert wire.report(body(wire.message(wire.HELLO, shared)), "write") == shared
    assert wire.heartbeat_body(wire.heartbeat(9, "ipc:///x")[1]) == wire.Heartbeat(9, "ipc:///x")
    request = wire.catchup_request_body(wire.catchup_request(3, 0, 10))
    assert request == wire.CatchupRequest(3, 0, 10)
    reply = wire.catchup_reply_body(wire.catchup_reply(3, 7, [wire.pack(EVENT)]))
    assert reply == wire.CatchupReply(3, 7, [EVENT])


BAD_COMMANDS = [
    b"\xc1",                                              # not msgpack
    wire.pack([1, 2]) + b"\x00",                          # extra bytes after the value
    wire.pack({"seq": 1}),                                # not a list
    wire.pack([[1, "a", "B", {}, "id"]]),                 # five fields, not six
    wire.pack([["1", "a", "B", {}, "id", None]]),         # seq not an integer
    wire.pack([[-1, "a", "B", {}, "id", None]]),          # seq out of range
    wire.pack([[1, "a", "B", {}, 7, None]]),              # command id not text
    wire.pack([[1, "a", "B", {}, "id", -3]]),             # expected version out of range
    wire.pack([[1, "a", "B", {}, "id", True]]),           # a boolean is not a version
]


@pytest.mark.parametrize("data", BAD_COMMANDS)
def test_bad_command_batches_are_refused(data):
    with pytest.raises(wire.BadFrame):
        wire.command_requests(data)


@pytest.mark.parametrize("data", [
    wire.pack([[1, {"success": True}, 3]]),               # success without events
    wire.pack([[1, {"error": [11]}, 3]]),                 # error without text
    wire.pack([[1, "ok", 3]]),                            # result not a map
    wire.pack([[1, {"success": False, "errors": []}, 2 ** 64 - 1]]),  # past 2^63-1
])
def test_bad_results_are_refused(data):
    with pytest.raises(wire.BadFrame):
        wire.command_results(data)


@pytest.mark.parametrize("report", [
    ["write", 42, True, 9, {}],            # a write report on the read endpoint
    ["read", 0, True, 9, {}],              # no such pid
    ["read", 42, "yes", 9, {}],            # ready not a boolean
    ["read", 42, True, -1, {}],            # position out of range
    ["read", 42, True, 9, {"q": "1"}],     # counters not integers
    ["read", 42, True, 9],                 # a field missing
    ["read", 42, True, 9, {}, 1],          # exclusive not a boolean
    ["read", 42, True, 9, {}, False, 0],   # a field too many
    {"role": "read"},                      # a map, not the record
])
def test_bad_reports_are_refused(report):
    with pytest.raises(wire.BadFrame):
        wire.report(wire.pack(report), "read")


def test_a_report_without_exclusive_means_a_store_with_one_writer():
    """A write side of a node from before shared stores (5 fields) keeps the rule it was
    built for: its hello replaces every other write side."""
    old = wire.report(wire.pack(["write", 42, True, 9, {}]), "write")
    assert old == wire.Report("write", 42, True, 9, {}) and old.exclusive is True


@pytest.mark.parametrize("change", [
    {"position": 0}, {"position": INT64_MAX + 1}, {"version": "1"}, {"data": []},
    {"stream_id": None}, {"event_id": 5},
])
def test_bad_events_are_refused(change):
    with pytest.raises(wire.BadFrame):
        wire.event({**EVENT, **change})


@pytest.mark.parametrize("key", list(EVENT))
def test_an_event_missing_any_key_is_refused(key):
    event = dict(EVENT)
    del event[key]
    with pytest.raises(wire.BadFrame):
        wire.event(event)


@pytest.mark.parametrize("request_body", [
    {"req": 1, "after": 2 ** 64 - 1},
    {"req": 1, "after": "1" * 30},
    {"req": 1, "after": -1},
    {"req": 1},
    {"after": 1},
    {"req": 1, "after": 1, "limit": 0},
    [1, 2],
])
def test_bad_catchup_requests_are_refused(request_body):
    with pytest.raises(wire.BadFrame):
        wire.catchup_request_body(msgpack.packb(request_body))


def test_frame_counts_are_checked():
    assert wire.frames([b"a", b"b"], 2, "x") == [b"a", b"b"]
    for parts in ([b"a"], [b"a", b"b", b"c"]):
        with pytest.raises(wire.BadFrame):
            wire.frames(parts, 2, "x")


def test_drops_are_counted_and_logged_at_most_once_a_second_per_peer(caplog):
    drops = wire.Drops(logging.getLogger("test-wire"))
    with caplog.at_level(logging.WARNING, logger="test-wire"):
        for _ in range(100):
            drops.drop("somewhere", b"peer-a", wire.BadFrame("bad"))
        drops.drop("somewhere", b"peer-b", wire.BadFrame("bad"))
    assert drops.count == 101
    assert len(caplog.records) == 2
