"""End-to-end tests of the monitoring event stream, PROTOCOL.md section 8 (and 7 on publishing).

A plain pyzmq SUB socket connects to the node's PUB endpoint. After subscribing it waits for a
heartbeat, so the subscription is known to be live before any command is sent.
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import msgpack
import pytest
import zmq

from tests.support.formats import CANONICAL_TIME, parse_time
from tests.support.ports import free_events_endpoint

EVENT_KEYS = {"position", "context", "stream_id", "version", "type", "data", "recorded_at", "event_id"}
TIMEOUT = 20.0  # generous: a 2-core machine may be busy


class Tap:
    """A SUB socket on the event stream that checks every message's shape as it arrives."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        self.last_position: int | None = None  # of the last event received
        self.heartbeats: list[int] = []
        self.pending: list[dict] = []  # events received while waiting for a heartbeat
        self.early: list[dict] = []  # events received before the first heartbeat (see sync)

    def recv(self, timeout: float = TIMEOUT) -> tuple[str, dict]:
        """The next message as (topic, map); exactly two frames, UTF-8 topic, msgpack map."""
        assert self.sock.poll(int(timeout * 1000)), "no message on the event stream"
        frames = self.sock.recv_multipart()
        assert len(frames) == 2, frames
        return frames[0].decode("utf-8"), msgpack.unpackb(frames[1], raw=False)

    def heartbeat(self, timeout: float = TIMEOUT) -> int:
        """Wait for the next heartbeat and return its head; events on the way are kept."""
        deadline = time.monotonic() + timeout
        while True:
            topic, body = self.recv(max(0.01, deadline - time.monotonic()))
            if topic == "_heartbeat":
                return self._check_heartbeat(body)
            self.pending.append(self._check_event(topic, body))

    def event(self, timeout: float = TIMEOUT) -> dict:
        """The next event, skipping (and checking) heartbeats."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            topic, body = self.recv(max(0.01, deadline - time.monotonic()))
            if topic != "_heartbeat":
                return self._check_event(topic, body)
            self._check_heartbeat(body)

    def events(self, count: int, timeout: float = TIMEOUT) -> list[dict]:
        deadline = time.monotonic() + timeout
        return [self.event(max(0.01, deadline - time.monotonic())) for _ in range(count)]

    def _check_heartbeat(self, body: dict) -> int:
        # A heartbeat carries the last position published before it on the same socket.
        # ... and where to catch up from (PROTOCOL section 8): an endpoint to connect to.
        assert list(body) == ["head", "catchup"] and isinstance(body["head"], int), body
        assert body["catchup"].startswith(("ipc://", "tcp://")), body
        if self.last_position is not None:
            assert body["head"] == self.last_position, (body, self.last_position)
        self.heartbeats.append(body["head"])
        return body["head"]

    def _check_event(self, topic: str, event: dict) -> dict:
        assert set(event) == EVENT_KEYS, event
        assert topic == f"{event['context']}.{event['type']}"
        assert CANONICAL_TIME.fullmatch(event["recorded_at"]), event["recorded_at"]
        assert str(uuid.UUID(event["event_id"])) == event["event_id"]
        assert isinstance(event["data"], dict)
        if self.last_position is not None:  # gap-free and increasing
            assert event["position"] == self.last_position + 1, (event, self.last_position)
        self.last_position = event["position"]
        return event

    def sync(self) -> int:
        """Wait for a heartbeat: from then on the subscription is live. Events that came before
        it (such as the sample data, when the tap connected early enough) are kept in early."""
        head = self.heartbeat()
        self.early, self.pending = self.pending, []
        self.last_position = head
        return head

    def close(self) -> None:
        self.sock.close(0)


@pytest.fixture
def tap_factory():
    """Open taps with tap_factory(endpoint); each syncs on a first heartbeat unless sync=False."""
    taps: list[Tap] = []

    def open_tap(endpoint: str, sync: bool = True) -> Tap:
        tap = Tap(endpoint)
        taps.append(tap)
        if sync:
            tap.sync()
        return tap

    yield open_tap
    for tap in taps:
        tap.close()


def reply_line(node, message) -> str:
    node.send(message)
    return node.read_line(timeout=TIMEOUT)


def stripped(event: dict) -> dict:
    """An event without the fields the node makes up (checked separately)."""
    return {k: v for k, v in event.items() if k not in ("recorded_at", "event_id")}


# -- the endpoint ----------------------------------------------------------------------

def test_given_endpoint_is_logged_on_stderr(tcp_node, tap_factory):
    node, endpoint = tcp_node()
    assert node.events_endpoint() == endpoint
    assert f"\nevents endpoint: {endpoint}\n" in "\n" + node.stderr()
    assert tap_factory(endpoint).heartbeats == [4]


def test_default_endpoint_is_logged_and_live(node, tap_factory):
    """Without --events-endpoint the node logs its own (ipc) endpoint, and it works."""
    endpoint = node.events_endpoint()
    assert endpoint.startswith("ipc://")
    assert tap_factory(endpoint).heartbeats == [4]


@pytest.mark.parametrize("args,head", [((), 4), (("--no-sample-data",), 0)], ids=["sample", "empty"])
def test_idle_heartbeat_head_is_the_last_position(tcp_node, tap_factory, args, head):
    """Sample data is positions 1..4; an empty store has head 0. Idle heartbeats repeat it."""
    _, endpoint = tcp_node(*args)
    tap = tap_factory(endpoint)
    assert [tap.heartbeat(), tap.heartbeat()] == [head, head]


# -- events ----------------------------------------------------------------------------

def test_events_of_both_dialects(tcp_node, tap_factory):
    """Each successful command's event: topic, exact fields, position, stream version."""
    node, endpoint = tcp_node()
    tap = tap_factory(endpoint)
    started = datetime.now(timezone.utc)

    created = json.loads(reply_line(node, {"type": "CreateUser", "msg_id": 1, "payload": {
        "name": "Ann", "email": "ann@example.com", "age": 30}}))
    ann = created["events"][0]["payload"]["id"]
    created2 = json.loads(reply_line(node, {"type": "CreateUser", "msg_id": 2, "payload": {
        "name": "Bo", "email": "bo@example.com"}}))
    bo = created2["events"][0]["payload"]["id"]
    commands = [
        {"type": "RenameUser", "msg_id": 3, "payload": {"id": "user-123", "name": "Jay"}},
        {"type": "ChangeEmail", "msg_id": 4, "payload": {"id": ann, "email": "ann2@example.com"}},
        {"type": "DeactivateUser", "msg_id": 5, "payload": {"id": ann}},
        {"type": "command", "msg_id": 6, "command": {"type": "CreateUser", "payload": {"id": "acc-1", "name": "Cy"}}},
        {"type": "command", "msg_id": 7, "command": {"type": "RenameUser", "payload": {"id": "user-123", "name": "Jo"}}},
        {"type": "command", "msg_id": 8, "command": {"type": "DeleteUser", "payload": {"id": "acc-1"}}},
    ]
    for message in commands:
        assert json.loads(reply_line(node, message))["success"] is True

    events = tap.events(8)
    finished = datetime.now(timezone.utc)
    assert [stripped(e) for e in events] == [
        {"position": 5, "context": "directory", "stream_id": ann, "version": 1, "type": "UserCreated",
         "data": {"id": ann, "name": "Ann", "email": "ann@example.com", "age": 30}},
        {"position": 6, "context": "directory", "stream_id": bo, "version": 1, "type": "UserCreated",
         "data": {"id": bo, "name": "Bo", "email": "bo@example.com"}},
        {"position": 7, "context": "directory", "stream_id": "user-123", "version": 2, "type": "UserRenamed",
         "data": {"id": "user-123", "name": "Jay"}},
        {"position": 8, "context": "directory", "stream_id": ann, "version": 2, "type": "UserEmailChanged",
         "data": {"id": ann, "email": "ann2@example.com"}},
        {"position": 9, "context": "directory", "stream_id": ann, "version": 3, "type": "UserDeactivated",
         "data": {"id": ann}},
        {"position": 10, "context": "accounts", "stream_id": "acc-1", "version": 1, "type": "UserCreated",
         "data": {"name": "Cy"}},
        {"position": 11, "context": "accounts", "stream_id": "user-123", "version": 4, "type": "UserRenamed",
         "data": {"name": "Jo"}},
        {"position": 12, "context": "accounts", "stream_id": "acc-1", "version": 2, "type": "UserDeleted",
         "data": {}},
    ]
    for event in events:
        assert started - timedelta(seconds=2) <= parse_time(event["recorded_at"]) <= finished + timedelta(seconds=2)
    assert len({e["event_id"] for e in events}) == 8
    assert tap.heartbeat() == 12


def test_failed_commands_publish_nothing(tcp_node, tap_factory):
    """Rejected commands (and an idempotent repeat, which appends nothing) publish no event:
    the next successful command's event is the very next position."""
    node, endpoint = tcp_node()
    tap = tap_factory(endpoint)
    rejected = [
        ({"type": "CreateUser", "msg_id": 1, "payload": {"name": "Ann"}},
         {"type": "command_result", "in_reply_to": 1, "success": False, "errors": ["Email is required"]}),
        ({"type": "CreateUser", "msg_id": 2, "payload": {"name": "Ann", "email": "JOHN.DOE@example.com"}},
         {"type": "command_result", "in_reply_to": 2, "success": False, "errors": ["Email is already registered"]}),
        ({"type": "RenameUser", "msg_id": 3, "payload": {"id": "nobody", "name": "X"}},
         {"type": "command_result", "in_reply_to": 3, "success": False, "errors": ["User not found"]}),
        ({"type": "RenameUser", "msg_id": 4, "expected_version": 7, "payload": {"id": "user-123", "name": "X"}},
         {"type": "command_result", "in_reply_to": 4, "success": False, "errors": ["Expected version 7, got 1"]}),
        ({"type": "command", "msg_id": 5, "command": {"type": "CreateUser", "payload": {"id": "user-123", "name": "Zed"}}},
         {"type": "command_result", "in_reply_to": 5, "success": False, "errors": ["User user-123 already exists"]}),
        ({"type": "command", "msg_id": 6, "command": {"type": "RenameUser", "payload": {"id": "ghost", "name": "X"}}},
         {"type": "command_result", "in_reply_to": 6, "success": False, "errors": ["User not found"]}),
        ({"type": "command", "msg_id": 7, "command": {"type": "RenameUser", "expectedVersion": 1,
                                                      "payload": {"id": "user-123", "name": "X"}}},
         {"type": "command_result", "in_reply_to": 7, "success": False, "errors": ["Expected version 1, got 3"]}),
        # Section 4: same id and name as the stored UserCreated is an idempotent repeat: success, nothing appended.
        ({"type": "command", "msg_id": 8, "command": {"type": "CreateUser", "payload": {"id": "user-123", "name": "John"}}},
         {"type": "command_result", "in_reply_to": 8, "success": True,
          "events": [{"eventType": "UserCreated", "aggregateId": "user-123"}]}),
    ]
    for message, expected in rejected:
        assert reply_line(node, message) == json.dumps(expected)

    assert reply_line(node, {"type": "DeactivateUser", "msg_id": 9, "payload": {"id": "user-123"}}) == json.dumps(
        {"type": "command_result", "in_reply_to": 9, "success": True,
         "events": [{"type": "UserDeactivated", "payload": {"id": "user-123"}}]})
    assert stripped(tap.event()) == {"position": 5, "context": "directory", "stream_id": "user-123",
                                     "version": 2, "type": "UserDeactivated", "data": {"id": "user-123"}}
    assert set(tap.heartbeats) == {4}  # no heartbeat before it moved the head either
    assert tap.heartbeat() == 5


def test_burst_positions_gap_free_and_versions_per_stream(tcp_node, tap_factory):
    """A pipelined burst of both dialects: one event per command, positions 5.. with no gap,
    versions counting up per (context, stream); idle heartbeat head is the last position."""
    node, endpoint = tcp_node()
    tap = tap_factory(endpoint)
    messages = []
    for i in range(60):
        stream = f"s-{i % 6}"
        ctype = "CreateUser" if i < 6 else "RenameUser"
        messages.append({"type": "command", "msg_id": 3 * i + 1,
                         "command": {"type": ctype, "payload": {"id": stream, "name": f"n{i}"}}})
        messages.append({"type": "RenameUser", "msg_id": 3 * i + 2, "payload": {"id": "user-123", "name": f"b{i}"}})
        messages.append({"type": "command", "msg_id": 3 * i + 3,
                         "command": {"type": "RenameUser", "payload": {"id": "user-123", "name": f"a{i}"}}})
    node.send(*messages)
    for message in messages:
        reply = json.loads(node.read_line(timeout=TIMEOUT))
        assert (reply["in_reply_to"], reply["success"]) == (message["msg_id"], True)

    events = tap.events(len(messages))
    assert [e["position"] for e in events] == list(range(5, 5 + len(messages)))
    next_version = {("directory", "user-123"): 2, ("accounts", "user-123"): 4}
    for event, message in zip(events, messages):
        key = (event["context"], event["stream_id"])
        assert event["version"] == next_version.get(key, 1), event
        next_version[key] = event["version"] + 1
        name = (message.get("command") or message)["payload"]["name"]
        assert event["data"]["name"] == name
    assert next_version[("accounts", "s-0")] == 11
    assert tap.heartbeat() == 4 + len(messages)


SAMPLE_EVENTS = {  # (context, version) -> the stored sample event, without its position and event_id
    ("directory", 1): {"context": "directory", "stream_id": "user-123", "version": 1, "type": "UserCreated",
                       "data": {"id": "user-123", "name": "John Doe", "email": "john.doe@example.com"},
                       "recorded_at": "2024-01-10T08:00:00.000000Z"},
    ("accounts", 1): {"context": "accounts", "stream_id": "user-123", "version": 1, "type": "UserCreated",
                      "data": {"name": "John"}, "recorded_at": "2024-01-01T00:00:00.000000Z"},
    ("accounts", 2): {"context": "accounts", "stream_id": "user-123", "version": 2, "type": "UserRenamed",
                      "data": {"name": "John Doe"}, "recorded_at": "2024-01-10T00:00:00.000000Z"},
    ("accounts", 3): {"context": "accounts", "stream_id": "user-123", "version": 3, "type": "UserRenamed",
                      "data": {"name": "John"}, "recorded_at": "2024-02-01T00:00:00.000000Z"},
}


def test_sample_data_is_in_the_store(node_factory, tap_factory):
    """Positions 1..4 are the sample events. The tap connects before the node starts, so it may
    see them live (then they are checked exactly); in any case their effects are checked:
    head 4, the accounts history with its recorded times, and the versions that follow."""
    endpoint = free_events_endpoint()
    tap = tap_factory(endpoint, sync=False)
    node = node_factory("--events-endpoint", endpoint)
    assert tap.sync() == 4
    for event in tap.early:  # possibly a suffix only: a slow joiner may miss the first ones
        expected = SAMPLE_EVENTS[(event["context"], event["version"])]
        assert {k: v for k, v in event.items() if k not in ("position", "event_id")} == expected
    assert [e["position"] for e in tap.early] == list(range(5 - len(tap.early), 5))
    assert len({e["event_id"] for e in tap.early}) == len(tap.early)

    history = reply_line(node, {"type": "query", "msg_id": 1,
                                "query": {"type": "GetUserHistory", "params": {"userId": "user-123"}}})
    assert history == json.dumps({"type": "query_result", "in_reply_to": 1, "data": [
        {"eventType": "UserCreated", "version": 1, "recordedAt": "2024-01-01T00:00:00.000000Z", "data": {"name": "John"}},
        {"eventType": "UserRenamed", "version": 2, "recordedAt": "2024-01-10T00:00:00.000000Z", "data": {"name": "John Doe"}},
        {"eventType": "UserRenamed", "version": 3, "recordedAt": "2024-02-01T00:00:00.000000Z", "data": {"name": "John"}},
    ]})
    assert reply_line(node, {"type": "GetUser", "msg_id": 2, "params": {"user_id": "user-123"}}) == json.dumps(
        {"type": "query_result", "in_reply_to": 2, "data": {"id": "user-123", "name": "John Doe"}})
    assert reply_line(node, {"type": "FindUserByEmail", "msg_id": 3, "params": {"email": "john.doe@example.com"}}) \
        == json.dumps({"type": "query_result", "in_reply_to": 3, "data": {"id": "user-123", "name": "John Doe"}})

    reply_line(node, {"type": "RenameUser", "msg_id": 4, "payload": {"id": "user-123", "name": "A"}})
    reply_line(node, {"type": "command", "msg_id": 5, "command": {"type": "RenameUser",
                                                                  "payload": {"id": "user-123", "name": "B"}}})
    assert [(e["position"], e["context"], e["version"]) for e in tap.events(2)] == [
        (5, "directory", 2), (6, "accounts", 4)]


def test_empty_store_starts_at_position_1(tcp_node, tap_factory):
    """--no-sample-data: head 0, and the first event is position 1, version 1."""
    node, endpoint = tcp_node("--no-sample-data")
    tap = tap_factory(endpoint)
    assert tap.heartbeats == [0]
    reply_line(node, {"type": "command", "msg_id": 1, "command": {"type": "CreateUser",
                                                                  "payload": {"id": "user-123", "name": "Solo"}}})
    assert stripped(tap.event()) == {"position": 1, "context": "accounts", "stream_id": "user-123",
                                     "version": 1, "type": "UserCreated", "data": {"name": "Solo"}}
    assert tap.heartbeat() == 1


def test_late_subscriber_gets_the_current_head(tcp_node, tap_factory):
    """A subscriber joining after some commands sees the head in the first heartbeat, and the
    next event continues right after it."""
    node, endpoint = tcp_node()
    for i in range(1, 4):
        reply_line(node, {"type": "command", "msg_id": i, "command": {"type": "CreateUser",
                                                                      "payload": {"id": f"late-{i}", "name": "L"}}})
    tap = tap_factory(endpoint)
    assert tap.heartbeats == [7]
    reply_line(node, {"type": "DeactivateUser", "msg_id": 9, "payload": {"id": "user-123"}})
    assert (tap.event()["position"], tap.heartbeat()) == (8, 8)
