"""The wire between the node's processes: every message is a named record here, with one
encoder and one validating decoder. No other module reads a message by position.

Frames: a message between the router and a back-end is two frames, a short ASCII kind
and one msgpack body (the router's ROUTER socket adds the peer's identity in front).
Records are NamedTuples, which msgpack packs as arrays: compact, and cheap to build.

Router <-> back-ends (the router binds ROUTER sockets, back-ends connect DEALERs)
  hello     back-end -> router   Report, sent on connect (an exclusive write side's
                                 replaces every other write side: see Report)
  status    back-end -> router   Report, about twice a second
  commands  router -> write side [CommandRequest, ...]
  results   write side -> router [CommandResult, ...]
  queries   router -> read side  [QueryRequest, ...]
  answers   read side -> router  Answers(position, [QueryAnswer, ...])

  A command's result is {"success": true, "events": [...]},
  {"success": false, "errors": [...]} or {"error": [code, text]} (common.errors);
  a query's result is {"json": "<its data as JSON text>"} or {"error": [code, text]}.
  CommandResult.position is the store head right after that command;
  QueryRequest.at asks for the state as of that position.

Event stream (the write side binds PUB; docs/protocol.md section 8)
  topic "<context>.<EventType>", then the event map (EVENT_KEYS)
  topic "_heartbeat", then {"head": N, "catchup": "<catch-up endpoint>"}

Catch-up (the write side binds ROUTER; subscribers connect DEALERs)
  request   {"req": R, "after": N[, "limit": M]}
  reply     {"head": H, "req": R, "events": [event map, ...]}

Every decoder raises BadFrame, and only BadFrame, for a message that is not what it
claims to be: a wrong frame count, bad msgpack, a wrong type, a missing key or an
out-of-range number. A receiver drops such a message, counts it and logs it at most
once a second per peer (Drops): nothing a peer sends can raise out of a loop.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, NamedTuple, TypeVar

import msgpack
import zmq

from common.errors import INT64_MAX

HELLO = b"hello"
STATUS = b"status"
COMMANDS = b"commands"
RESULTS = b"results"
QUERIES = b"queries"
ANSWERS = b"answers"
HEARTBEAT_TOPIC = b"_heartbeat"
ROLES = ("write", "read")
T = TypeVar("T")

_packer = msgpack.Packer(use_bin_type=True)
# What pack() raises for a value msgpack cannot carry (an integer past 64 bits, a lone
# surrogate in a string, a nesting too deep).
PACK_ERRORS = (OverflowError, ValueError, TypeError, msgpack.PackException)


class BadFrame(Exception):
    """A message that does not decode as the record it claims to be."""


# ---- records ------------------------------------------------------------------------------

class Report(NamedTuple):
    """A back-end introducing itself (hello) or saying how it is (status).

    exclusive (write sides): the write side's store has one writer (SQLite), so its hello
    means any other write side the router knows is gone and is replaced by it. False for a
    store several write sides share (PostgreSQL): its hello leaves the others in place.
    The default, and what a 5-field report (an older node's) means, is the one-writer rule
    every write side followed before stores could be shared; a read side leaves it."""
    role: str
    pid: int
    ready: bool
    position: int
    counters: dict
    exclusive: bool = True


class CommandRequest(NamedTuple):
    seq: int
    context: str
    name: str
    args: Any
    command_id: str
    expected_version: int | None


class CommandResult(NamedTuple):
    seq: int
    result: dict
    position: int


class QueryRequest(NamedTuple):
    seq: int
    context: str
    name: str
    params: Any
    at: int


class QueryAnswer(NamedTuple):
    seq: int
    result: dict


class Answers(NamedTuple):
    position: int
    items: list[QueryAnswer]


class Heartbeat(NamedTuple):
    head: int
    catchup: str


class CatchupRequest(NamedTuple):
    req: int
    after: int
    limit: int | None


class CatchupReply(NamedTuple):
    req: int
    head: int
    events: list[dict]


EVENT_KEYS = ("position", "context", "stream_id", "version", "type", "data", "recorded_at",
              "event_id")


# ---- msgpack ------------------------------------------------------------------------------

def pack(value: Any) -> bytes:
    return _packer.pack(value)


def unpack(data: bytes) -> Any:
    """Any msgpack value; BadFrame if `data` is not exactly one."""
    try:
        return msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise BadFrame(f"bad msgpack: {exc}") from None


def splice_map(fields: dict, key: str, packed_items: list[bytes]) -> bytes:
    """Pack `fields` plus `key`: an array of already-packed items, spliced in unchanged."""
    out = [_packer.pack_map_header(len(fields) + 1)]
    for name, value in fields.items():
        out += [_packer.pack(name), _packer.pack(value)]
    out += [_packer.pack(key), _packer.pack_array_header(len(packed_items)), *packed_items]
    return b"".join(out)


# ---- encoders -----------------------------------------------------------------------------

def message(kind: bytes, body: Any) -> list[bytes]:
    """The two frames of a router <-> back-end message whose body is a record or a list."""
    return [kind, pack(body)]


def heartbeat(head: int, catchup: str) -> list[bytes]:
    return [HEARTBEAT_TOPIC, pack({"head": head, "catchup": catchup})]


def catchup_request(req: int, after: int, limit: int | None = None) -> bytes:
    body = {"req": req, "after": after}
    if limit is not None:
        body["limit"] = limit
    return pack(body)


def catchup_reply(req: int, head: int, packed_events: list[bytes]) -> bytes:
    """Stored events are spliced in as the bytes they were stored as."""
    return splice_map({"head": head, "req": req}, "events", packed_events)


# ---- decoders -----------------------------------------------------------------------------

def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BadFrame(what)


# The helpers below build their message only when the check fails: they run per item.

def _position(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise BadFrame(f"{what} must be a position")
    return value


def _text(value: Any, what: str) -> str:
    if type(value) is not str:
        raise BadFrame(f"{what} must be a string")
    return value


def _array(body: Any, size: int, what: str) -> list:
    if type(body) is not list or len(body) != size:
        raise BadFrame(f"{what} must be an array of {size}")
    return body


def _items(body: Any, what: str) -> list:
    if type(body) is not list:
        raise BadFrame(f"{what} must be an array")
    return body


def frames(parts: list[bytes], count: int, what: str) -> list[bytes]:
    """The frames of a message that must have exactly `count` of them."""
    if len(parts) != count:
        raise BadFrame(f"{what} must have {count} frames, not {len(parts)}")
    return parts


def from_router(parts: list[bytes], kind: bytes, decode: Callable[[bytes], T]) -> T:
    """A back-end's view of a message from the router: two frames, the expected kind, and
    a body that `decode` accepts."""
    got, body = frames(parts, 2, "a router message")
    if got != kind:
        raise BadFrame(f"a message of kind {got[:32]!r}, not {kind.decode()}")
    return decode(body)


def report(data: bytes, role: str) -> Report:
    """A hello or status from a back-end on the endpoint of `role`: 6 fields, or the 5 of a
    back-end that predates `exclusive` (so nodes can be upgraded one host at a time)."""
    fields = unpack(data)
    _check(type(fields) is list and len(fields) in (5, 6), "report must be an array of 5 or 6")
    r = Report(*fields)
    _check(type(r.exclusive) is bool, "exclusive must be a boolean")
    counters = r.counters
    _position(r.position, "report position")
    _check(r.role == role, f"a {r.role!r} report on the {role} endpoint")
    _check(type(r.pid) is int and 0 < r.pid <= INT64_MAX, "pid must be a positive integer")
    _check(type(r.ready) is bool, "ready must be a boolean")
    _check(type(counters) is dict and all(type(k) is str and type(v) is int
                                          for k, v in counters.items()),
           "counters must map names to integers")
    return r


def _result(value: Any) -> dict:
    """A command's or a query's result (see the module docstring)."""
    _check(type(value) is dict, "result must be a map")
    if "json" in value:  # the usual case first: a query's data
        _text(value["json"], "json")
    elif "error" in value:
        pair = value["error"]
        _check(type(pair) is list and len(pair) == 2 and type(pair[0]) is int
               and type(pair[1]) is str, "error must be [code, text]")
    else:
        _check(type(value.get("success")) is bool, "result needs success, error or json")
        _items(value.get("events" if value["success"] else "errors"), "result list")
    return value


# The decoders below run for every request and answer, so each checks an item in one
# expression and builds its message only when that fails.

def command_requests(data: bytes) -> list[CommandRequest]:
    out = []
    for item in _items(unpack(data), "commands"):
        seq, context, name, args, command_id, expected = _array(item, 6, "command")
        if not (type(seq) is int and 0 <= seq <= INT64_MAX and type(context) is str
                and type(name) is str and type(command_id) is str
                and (expected is None or (type(expected) is int and 0 <= expected <= INT64_MAX))):
            raise BadFrame(f"command {seq!r}: a field of the wrong type or out of range")
        out.append(CommandRequest(seq, context, name, args, command_id, expected))
    return out


def command_results(data: bytes) -> list[CommandResult]:
    out = []
    for item in _items(unpack(data), "results"):
        seq, result, position = _array(item, 3, "result")
        if not (type(seq) is int and 0 <= seq <= INT64_MAX
                and type(position) is int and 0 <= position <= INT64_MAX):
            raise BadFrame(f"result {seq!r}: seq and position must be positions")
        out.append(CommandResult(seq, _result(result), position))
    return out


def query_requests(data: bytes) -> list[QueryRequest]:
    out = []
    for item in _items(unpack(data), "queries"):
        seq, context, name, params, at = _array(item, 5, "query")
        if not (type(seq) is int and 0 <= seq <= INT64_MAX and type(context) is str
                and type(name) is str and type(at) is int and 0 <= at <= INT64_MAX):
            raise BadFrame(f"query {seq!r}: a field of the wrong type or out of range")
        out.append(QueryRequest(seq, context, name, params, at))
    return out


def answers(data: bytes) -> Answers:
    position, items = _array(unpack(data), 2, "answers")
    out = []
    for item in _items(items, "answer items"):
        seq, result = _array(item, 2, "answer")
        if not (type(seq) is int and 0 <= seq <= INT64_MAX and type(result) is dict
                and type(result.get("json")) is str):
            _position(seq, "seq")
            _result(result)  # an error, or the message that says what is wrong
        out.append(QueryAnswer(seq, result))
    return Answers(_position(position, "position"), out)


def event(value: Any) -> dict:
    """An event map (docs/protocol.md section 8), already unpacked, checked key by key."""
    _check(type(value) is dict, "event must be a map")
    try:
        position, context, stream_id, version, type_, data, recorded_at, event_id = (
            value["position"], value["context"], value["stream_id"], value["version"],
            value["type"], value["data"], value["recorded_at"], value["event_id"])
    except KeyError as missing:
        raise BadFrame(f"event has no {missing}") from None
    if not (type(position) is int and 0 < position <= INT64_MAX
            and type(version) is int and 0 < version <= INT64_MAX
            and type(context) is str and type(stream_id) is str and type(type_) is str
            and type(recorded_at) is str and type(event_id) is str and type(data) is dict):
        raise BadFrame(f"event {position!r}: a field of the wrong type or out of range")
    return value


def heartbeat_body(data: bytes) -> Heartbeat:
    body = unpack(data)
    _check(type(body) is dict, "heartbeat must be a map")
    catchup = body.get("catchup", "")
    return Heartbeat(_position(body.get("head"), "head"), _text(catchup, "catchup"))


def catchup_request_body(data: bytes) -> CatchupRequest:
    body = unpack(data)
    _check(type(body) is dict, "catch-up request must be a map")
    req = body.get("req")
    _check(type(req) is int and 0 <= req <= INT64_MAX, "req must be a non-negative integer")
    limit = body.get("limit")
    _check(limit is None or (type(limit) is int and 0 < limit <= INT64_MAX),
           "limit must be a positive integer")
    return CatchupRequest(req, _position(body.get("after"), "after"), limit)


def catchup_reply_body(data: bytes) -> CatchupReply:
    body = unpack(data)
    _check(type(body) is dict, "catch-up reply must be a map")
    req = body.get("req")
    _check(type(req) is int, "req must be an integer")
    events = [event(e) for e in _items(body.get("events"), "events")]
    return CatchupReply(req, _position(body.get("head"), "head"), events)


# ---- dropping what does not decode --------------------------------------------------------

class Drops:
    """Counts the messages a process dropped and logs them, at most once a second per peer,
    so a flood of bad frames costs a counter, not a flood of log lines."""

    LOG_EVERY = 1.0
    MAX_PEERS = 4096  # remembered for rate limiting; forgotten all at once past this

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.count = 0
        self._last_logged: dict[Any, float] = {}

    def drop(self, where: str, peer: Any, why: Any) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last_logged.get(peer, -self.LOG_EVERY) >= self.LOG_EVERY:
            if len(self._last_logged) >= self.MAX_PEERS:
                self._last_logged.clear()
            self._last_logged[peer] = now
            self.log.warning("dropped a message on %s from %s: %s (%d dropped so far)",
                             where, _peer_name(peer), why, self.count)


def _peer_name(peer: Any) -> str:
    return peer.hex() if isinstance(peer, bytes) else str(peer)


def context() -> zmq.Context:
    """A ZeroMQ context whose sockets reconnect quickly: peers restart, and start-up should
    not wait out the default 100 ms reconnect interval."""
    ctx = zmq.Context()
    ctx.setsockopt(zmq.RECONNECT_IVL, 10)
    ctx.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
    return ctx
