"""The benchmark baseline: the node's protocol as a careful learner would first write it.

The benchmark harness runs this program beside the real node, to show what the real
node's design (separate write and read processes, a durable SQLite store, batching)
costs and buys. It is deliberately simple:

- one process, one thread, the standard library only;
- every piece of state in memory (dicts and lists): nothing is durable, and
  `--data-dir` and the other settings of run_node.py are accepted and ignored;
- read a line, handle it, write its reply line, flush; then the next line.

Apart from durability it keeps the whole contract of ../shared/PROTOCOL.md: both
dialects, validation errors in their order, idempotent CreateUser, expected versions,
command ids (exactly once within this process), temporal queries, `--envelope`, the
line limit and the sample data. Where PROTOCOL.md is silent it answers as the real
node does (README, "Behaviour where PROTOCOL.md is silent"): the error texts, command
ids kept per context, rejected commands remembered under their id.

    python -m bench.baseline [--envelope] [--no-sample-data] [--max-line N] [--data-dir DIR]
    python bench/baseline.py ...
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import islice
from typing import Any, Callable, Iterator

MALFORMED, NOT_SUPPORTED, CRASH = 12, 10, 13  # Maelstrom error codes
MAX_LINE = 1 << 20
MAX_COMMAND_ID = 128
MAX_VERSION = 1 << 63  # expected versions from 0 to below this: what the wire carries
MAX_PAGE = (1 << 63) - 1
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
MSG_ID = re.compile(rb'"msg_id"\s*:\s*(-?\d{1,18})\b')  # looked for in an oversized line
KEEP = 64 * 1024  # of an oversized line, the bytes kept at each end to look for its msg_id


# ---- errors -------------------------------------------------------------------------------

class RequestError(Exception):
    """A request answered with a Maelstrom error instead of a result."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def malformed(text: str) -> RequestError:
    return RequestError(MALFORMED, f"malformed request: {text}")


class Rejected(Exception):
    """A command that breaks a rule: nothing is stored and the errors are the reply."""

    def __init__(self, *errors: str) -> None:
        super().__init__(*errors)
        self.errors = list(errors)


# ---- time -----------------------------------------------------------------------------------

def format_time(moment: datetime) -> str:
    """The protocol's one time form, e.g. 2024-01-10T00:00:00.000000Z."""
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def parse_time(text: Any) -> datetime:
    """An ISO-8601 timestamp as an aware UTC datetime (no zone means UTC).

    Raises ValueError (or OverflowError, out of datetime's range) when it does not parse."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("not a timestamp")
    raw = text.strip()
    if raw[-1] in "zZ":
        raw = raw[:-1] + "+00:00"
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


class Clock:
    """Times for new events: now, never earlier than the last time handed out."""

    def __init__(self) -> None:
        self.last = ""

    def now(self) -> str:
        self.last = max(self.last, format_time(datetime.now(timezone.utc)))
        return self.last


# ---- the event log --------------------------------------------------------------------------

class EventLog:
    """Every event of every context, in memory: a global position and per-stream lists."""

    def __init__(self) -> None:
        self.position = 0
        self.streams: dict[tuple[str, str], list[dict]] = {}

    def stream(self, context: str, stream_id: str) -> list[dict]:
        return self.streams.get((context, stream_id), [])

    def version(self, context: str, stream_id: str) -> int:
        return len(self.stream(context, stream_id))

    def append(self, context: str, stream_id: str, type_: str, data: dict,
               recorded_at: str) -> dict:
        """Store one event (the fields of PROTOCOL.md section 8 that matter here) and return it."""
        events = self.streams.setdefault((context, stream_id), [])
        self.position += 1
        event = {"position": self.position, "stream_id": stream_id, "version": len(events) + 1,
                 "type": type_, "data": data, "recorded_at": recorded_at}
        events.append(event)
        return event


# ---- checks shared by both contexts ---------------------------------------------------------

def is_text(value: Any) -> bool:
    """A string with something other than white space in it."""
    return isinstance(value, str) and bool(value.strip())


def is_whole(value: Any) -> bool:
    """An integer, or a float with no fraction; never a boolean."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def as_payload(value: Any) -> dict:
    """A payload (or params) that is not an object counts as an empty one."""
    return value if isinstance(value, dict) else {}


def check_expected_version(expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise Rejected(f"Expected version {expected}, got {actual}")


def text_param(params: dict, key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise malformed(f"param {key} must be a string")
    return value


def whole_param(params: dict, key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise malformed(f"param {key} must be an integer from {low} to {high}")
    return value


def page_of(views: Iterator[dict], params: dict) -> list[dict]:
    """The page that `page` (from 1) and `limit` (1..1000, default 10) ask for."""
    page = whole_param(params, "page", 1, 1, MAX_PAGE)
    limit = whole_param(params, "limit", 10, 1, 1000)
    start = (page - 1) * limit
    return list(islice(views, start, start + limit))


def user_view(user_id: str, state: dict | None) -> dict | None:
    """What queries show of a user: id and name, and nothing once inactive."""
    if state is None or not state["active"]:
        return None
    return {"id": user_id, "name": state["name"]}


def fits_wire(value: Any) -> bool:
    """Whether the real node could pass this value between its processes (msgpack):
    integers within 64 bits, text encodable as UTF-8. The node answers error 12 when
    not, and so does the baseline, so that both give the same replies."""
    todo = [value]
    while todo:
        item = todo.pop()
        kind = type(item)  # parsed JSON holds only these exact types
        if kind is str:
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate, from a \udXXX escape
                    return False
        elif kind is dict:
            todo.extend(item.keys())
            todo.extend(item.values())
        elif kind is list:
            todo.extend(item)
        elif kind is int and not -(1 << 63) <= item < 1 << 64:
            return False
    return True


# ---- the `directory` context (bus dialect) --------------------------------------------------

def evolve_directory_user(state: dict | None, event: dict) -> dict | None:
    type_, data = event["type"], event["data"]
    if type_ == "UserCreated":
        return {"name": data["name"], "email": data["email"], "active": True}
    if state is None:
        return None
    if type_ == "UserRenamed":
        return {**state, "name": data["name"]}
    if type_ == "UserEmailChanged":
        return {**state, "email": data["email"]}
    if type_ == "UserDeactivated":
        return {**state, "active": False}
    return state


class Directory:
    """Users registered with an email that no other user has; the node picks the ids."""

    name = "directory"

    def __init__(self, log: EventLog, clock: Clock) -> None:
        self.log = log
        self.clock = clock
        self.users: dict[str, dict] = {}   # id -> state, in creation order
        self.emails: dict[str, str] = {}   # lower-cased email -> id (kept after deactivation)
        self.commands: dict[str, Callable] = {
            "CreateUser": self.create_user, "RenameUser": self.rename_user,
            "ChangeEmail": self.change_email, "DeactivateUser": self.deactivate_user}
        self.queries: dict[str, Callable] = {
            "GetUser": self.get_user, "ListUsers": self.list_users,
            "FindUserByEmail": self.find_user_by_email}

    def seed(self) -> None:
        self.emit("user-123", "UserCreated",
                  {"id": "user-123", "name": "John Doe", "email": "john.doe@example.com"},
                  "2024-01-10T08:00:00.000000Z")

    def emit(self, user_id: str, type_: str, data: dict, recorded_at: str | None = None) -> None:
        event = self.log.append(self.name, user_id, type_, data, recorded_at or self.clock.now())
        before = self.users.get(user_id)
        after = self.users[user_id] = evolve_directory_user(before, event)
        if before and before["email"].lower() != after["email"].lower():
            del self.emails[before["email"].lower()]
        self.emails[after["email"].lower()] = user_id

    # -- checks --

    @staticmethod
    def payload_errors(payload: dict, fields: tuple[str, ...]) -> list[str]:
        """Every error of the named fields, in PROTOCOL.md's order."""
        errors = []
        if "name" in fields and not is_text(payload.get("name")):
            errors.append("Name is required")
        if "email" in fields:
            email = payload.get("email")
            if email is None or (isinstance(email, str) and not email.strip()):
                errors.append("Email is required")
            elif not isinstance(email, str) or not EMAIL.fullmatch(email):
                errors.append("Email is invalid")
        if "age" in fields and "age" in payload:
            age = payload["age"]
            if not is_whole(age) or age < 0:
                errors.append("Age must be a non-negative integer")
            elif age < 18:
                errors.append("User must be 18 or older")
        if "id" in fields and not is_text(payload.get("id")):
            errors.append("Id is required")
        return errors

    def check_payload(self, payload: dict, fields: tuple[str, ...]) -> None:
        errors = self.payload_errors(payload, fields)
        if errors:
            raise Rejected(*errors)

    def existing_user(self, user_id: str) -> dict:
        user = self.users.get(user_id)
        if user is None:
            raise Rejected("User not found")
        if not user["active"]:
            raise Rejected("User is deactivated")
        return user

    def check_email_free(self, email: str, user_id: str | None) -> None:
        owner = self.emails.get(email.lower())
        if owner is not None and owner != user_id:
            raise Rejected("Email is already registered")

    def check_version(self, user_id: str, expected: int | None) -> None:
        check_expected_version(expected, self.log.version(self.name, user_id))

    # -- commands --

    def create_user(self, payload: dict, expected: int | None) -> list[dict]:
        # expected_version names no existing user here: it is ignored.
        self.check_payload(payload, ("name", "email", "age"))
        self.check_email_free(payload["email"], None)
        user_id = str(uuid.uuid4())
        data = {"id": user_id, "name": payload["name"], "email": payload["email"]}
        if "age" in payload:
            data["age"] = int(payload["age"])
            if not fits_wire(data["age"]):  # e.g. 1e20: whole, but past 64 bits
                raise malformed("a value is out of range")
        self.emit(user_id, "UserCreated", data)
        return [{"type": "UserCreated", "payload": {"id": user_id, "name": payload["name"]}}]

    def rename_user(self, payload: dict, expected: int | None) -> list[dict]:
        self.check_payload(payload, ("name", "id"))
        user_id = payload["id"]
        self.existing_user(user_id)
        self.check_version(user_id, expected)
        self.emit(user_id, "UserRenamed", {"id": user_id, "name": payload["name"]})
        return [{"type": "UserRenamed", "payload": {"id": user_id, "name": payload["name"]}}]

    def change_email(self, payload: dict, expected: int | None) -> list[dict]:
        self.check_payload(payload, ("email", "id"))
        user_id = payload["id"]
        self.existing_user(user_id)
        self.check_email_free(payload["email"], user_id)
        self.check_version(user_id, expected)
        self.emit(user_id, "UserEmailChanged", {"id": user_id, "email": payload["email"]})
        return [{"type": "UserEmailChanged", "payload": {"id": user_id}}]

    def deactivate_user(self, payload: dict, expected: int | None) -> list[dict]:
        self.check_payload(payload, ("id",))
        user_id = payload["id"]
        self.existing_user(user_id)
        self.check_version(user_id, expected)
        self.emit(user_id, "UserDeactivated", {"id": user_id})
        return [{"type": "UserDeactivated", "payload": {"id": user_id}}]

    # -- queries --

    def get_user(self, params: dict) -> dict | None:
        user_id = text_param(params, "user_id")
        return user_view(user_id, self.users.get(user_id))

    def find_user_by_email(self, params: dict) -> dict | None:
        user_id = self.emails.get(text_param(params, "email").lower())
        return user_id and user_view(user_id, self.users[user_id])

    def list_users(self, params: dict) -> list[dict]:
        views = (user_view(uid, state) for uid, state in self.users.items())
        return page_of((v for v in views if v), params)


# ---- the `accounts` context (envelope dialect) ----------------------------------------------

def evolve_account(state: dict | None, event: dict) -> dict | None:
    type_, data = event["type"], event["data"]
    if type_ == "UserCreated":
        return {"name": data["name"], "created_name": data["name"], "active": True}
    if state is None:
        return None
    if type_ == "UserRenamed":
        return {**state, "name": data["name"]}
    if type_ == "UserDeleted":
        return {**state, "active": False}
    return state


class Accounts:
    """Users with ids chosen by the client, renamed over time, and queried as of any time."""

    name = "accounts"

    def __init__(self, log: EventLog, clock: Clock) -> None:
        self.log = log
        self.clock = clock
        self.users: dict[str, dict] = {}  # id -> state, in creation order
        self.commands: dict[str, Callable] = {
            "CreateUser": self.create_user, "RenameUser": self.rename_user,
            "DeleteUser": self.delete_user}
        self.queries: dict[str, Callable] = {
            "GetUser": self.get_user, "GetUserAtTime": self.get_user_at_time,
            "GetUserHistory": self.get_user_history, "ListUsers": self.list_users}

    def seed(self) -> None:
        self.emit("user-123", "UserCreated", {"name": "John"}, "2024-01-01T00:00:00.000000Z")
        self.emit("user-123", "UserRenamed", {"name": "John Doe"}, "2024-01-10T00:00:00.000000Z")
        self.emit("user-123", "UserRenamed", {"name": "John"}, "2024-02-01T00:00:00.000000Z")

    def emit(self, user_id: str, type_: str, data: dict, recorded_at: str | None = None) -> None:
        event = self.log.append(self.name, user_id, type_, data, recorded_at or self.clock.now())
        self.users[user_id] = evolve_account(self.users.get(user_id), event)

    # -- checks: payload (all errors together), expected version, existence --

    @staticmethod
    def check_payload(payload: dict, fields: tuple[str, ...]) -> None:
        errors = []
        if not is_text(payload.get("id")):
            errors.append("Id is required")
        if "name" in fields and not is_text(payload.get("name")):
            errors.append("Name is required")
        if errors:
            raise Rejected(*errors)

    def existing_user(self, user_id: str, expected: int | None) -> None:
        check_expected_version(expected, self.log.version(self.name, user_id))
        user = self.users.get(user_id)
        if user is None:
            raise Rejected("User not found")
        if not user["active"]:
            raise Rejected("User is deleted")

    @staticmethod
    def reply(type_: str, user_id: str) -> list[dict]:
        return [{"eventType": type_, "aggregateId": user_id}]

    # -- commands --

    def create_user(self, payload: dict, expected: int | None) -> list[dict]:
        self.check_payload(payload, ("id", "name"))
        user_id, name = payload["id"], payload["name"]
        check_expected_version(expected, self.log.version(self.name, user_id))
        user = self.users.get(user_id)
        if user is not None:  # deleted or not, the id is taken
            if user["created_name"] == name:  # the same CreateUser again: nothing new
                return self.reply("UserCreated", user_id)
            raise Rejected(f"User {user_id} already exists")
        self.emit(user_id, "UserCreated", {"name": name})
        return self.reply("UserCreated", user_id)

    def rename_user(self, payload: dict, expected: int | None) -> list[dict]:
        self.check_payload(payload, ("id", "name"))
        self.existing_user(payload["id"], expected)
        self.emit(payload["id"], "UserRenamed", {"name": payload["name"]})
        return self.reply("UserRenamed", payload["id"])

    def delete_user(self, payload: dict, expected: int | None) -> list[dict]:
        self.check_payload(payload, ("id",))
        self.existing_user(payload["id"], expected)
        self.emit(payload["id"], "UserDeleted", {})
        return self.reply("UserDeleted", payload["id"])

    # -- queries --

    def get_user(self, params: dict) -> dict | None:
        user_id = text_param(params, "userId")
        return user_view(user_id, self.users.get(user_id))

    def get_user_at_time(self, params: dict) -> dict | None:
        user_id = text_param(params, "userId")
        given = params.get("timestamp")
        try:
            moment = parse_time(given)
        except (ValueError, OverflowError):
            raise malformed("param timestamp must be an ISO-8601 timestamp") from None
        state = None
        for event in self.log.stream(self.name, user_id):
            if parse_time(event["recorded_at"]) <= moment:
                state = evolve_account(state, event)
        view = user_view(user_id, state)
        return view and {**view, "at_time": given}

    def get_user_history(self, params: dict) -> list[dict]:
        user_id = text_param(params, "userId")
        return [{"eventType": e["type"], "version": e["version"], "recordedAt": e["recorded_at"],
                 "data": e["data"]} for e in self.log.stream(self.name, user_id)]

    def list_users(self, params: dict) -> list[dict]:
        views = (user_view(uid, state) for uid, state in self.users.items())
        return page_of((v for v in views if v), params)


# ---- input lines ----------------------------------------------------------------------------

@dataclass
class Oversized:
    """A line over the limit: only its size and its two ends are kept."""
    head: bytes
    tail: bytes
    size: int

    def msg_id(self) -> int | None:
        match = MSG_ID.search(self.head) or MSG_ID.search(self.tail)
        return int(match.group(1)) if match else None


def read_requests(stream, max_line: int) -> Iterator[bytes | Oversized]:
    """Request lines from a binary stream; blank lines skipped, oversized ones never held whole."""
    while True:
        line = stream.readline(max_line + 1)
        if not line:
            return
        if line.endswith(b"\n"):
            line = line[:-1]
        elif len(line) > max_line:
            yield read_oversized(stream, line)
            continue
        if line and not line.isspace():
            yield line


def read_oversized(stream, start: bytes) -> Oversized:
    """The rest of a line already known to be too long, read in pieces."""
    big = Oversized(head=start[:KEEP], tail=start[-KEEP:], size=len(start))
    while True:
        piece = stream.readline(KEEP)
        if not piece:
            return big
        ends = piece.endswith(b"\n")
        if ends:
            piece = piece[:-1]
        big.size += len(piece)
        if len(big.head) < KEEP:
            big.head = (big.head + piece)[:KEEP]
        big.tail = (big.tail + piece)[-KEEP:]
        if ends:
            return big


# ---- the node -------------------------------------------------------------------------------

class Node:
    """Both contexts, the command-id memory and the request dispatch; one request at a time."""

    def __init__(self, envelope: bool = False, max_line: int = MAX_LINE,
                 sample_data: bool = True) -> None:
        self.envelope = envelope
        self.max_line = max_line
        self.log = EventLog()
        clock = Clock()
        self.directory = Directory(self.log, clock)
        self.accounts = Accounts(self.log, clock)
        self.results: dict[tuple[str, str], dict] = {}  # (context, command id) -> result
        self.requests = self.replies = 0
        if sample_data:
            self.directory.seed()
            self.accounts.seed()

    # -- one line in, one line out --

    def handle(self, line: bytes | Oversized) -> str:
        """The reply line (without its newline) to one request line."""
        self.requests += 1
        msg_id = src = dest = None
        try:
            if isinstance(line, Oversized):
                msg_id = line.msg_id()
                raise malformed(f"line of {line.size} bytes exceeds the limit of "
                                f"{self.max_line} bytes")
            message = decode(line)
            body = message
            if "body" in message:
                body, src, dest = message["body"], message.get("src"), message.get("dest")
                if not isinstance(body, dict):
                    raise malformed("body is not an object")
            msg_id = body.get("msg_id")
            reply = self.dispatch(body, msg_id)
        except RequestError as error:
            reply = {"type": "error", "in_reply_to": msg_id, "code": error.code,
                     "text": error.text}
        if self.envelope:
            reply = {"src": dest, "dest": src, "body": reply}
        self.replies += 1
        return json.dumps(reply)

    def dispatch(self, body: dict, msg_id: Any) -> dict:
        type_ = body.get("type")
        if type_ is None:
            raise malformed("missing type")
        if not isinstance(type_, str):
            raise malformed("type must be a string")
        if type_ == "init":
            return {"type": "init_ok", "in_reply_to": msg_id}
        if type_ == "stats":
            return {"type": "stats_result", "in_reply_to": msg_id, "data": self.stats()}
        if type_ == "command":
            return self.envelope_command(body, msg_id)
        if type_ == "query":
            return self.envelope_query(body, msg_id)
        if type_ in self.directory.commands:
            command_id = command_id_field(body, "command_id")
            expected = version_field(body, "expected_version")
            result = self.execute(self.directory, type_, body.get("payload"), command_id,
                                  expected)
            return command_reply(msg_id, result)
        if type_ in self.directory.queries:
            return query_reply(msg_id, self.ask(self.directory, type_, body.get("params")))
        raise RequestError(NOT_SUPPORTED, f"not supported: unknown message type {type_}")

    def envelope_command(self, body: dict, msg_id: Any) -> dict:
        command = object_field(body, "command")
        name = inner_type(command, "command", self.accounts.commands)
        command_id = command_id_field(command, "commandId")
        expected = version_field(command, "expectedVersion")
        result = self.execute(self.accounts, name, command.get("payload"), command_id, expected)
        return command_reply(msg_id, result)

    def envelope_query(self, body: dict, msg_id: Any) -> dict:
        query = object_field(body, "query")
        name = inner_type(query, "query", self.accounts.queries)
        return query_reply(msg_id, self.ask(self.accounts, name, query.get("params")))

    # -- running commands and queries --

    def execute(self, context, name: str, args: Any, command_id: str | None,
                expected: int | None) -> dict:
        """Run a command once per command id; a repeat gets the first run's result."""
        if not fits_wire([args, command_id]):
            raise malformed("a value is out of range")
        key = (context.name, command_id)
        if command_id is not None and key in self.results:
            return self.results[key]
        try:
            result = {"success": True, "events": context.commands[name](as_payload(args),
                                                                       expected)}
        except Rejected as rejected:
            result = {"success": False, "errors": rejected.errors}
        except RequestError:
            raise
        except Exception:  # a bug costs one reply (not remembered), never the process
            traceback.print_exc()
            raise RequestError(CRASH, f"crash: internal error in {name}") from None
        if command_id is not None:
            self.results[key] = result
        return result

    @staticmethod
    def ask(context, name: str, params: Any) -> Any:
        if not fits_wire(params):
            raise malformed("a value is out of range")
        try:
            return context.queries[name](as_payload(params))
        except RequestError:
            raise
        except Exception:
            traceback.print_exc()
            raise RequestError(CRASH, f"crash: internal error in {name}") from None

    def stats(self) -> dict:
        """Simple statistics, in the real node's outline; there are no other processes."""
        return {"router": {"role": "baseline", "pid": os.getpid(), "requests": self.requests,
                           "replies": self.replies, "pending": 0,
                           "head": self.log.position},
                "processes": []}


# ---- request fields and reply bodies --------------------------------------------------------

def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


def decode(line: bytes) -> dict:
    try:  # strict JSON: NaN, Infinity and numbers that overflow to infinity are refused
        message = json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise malformed("invalid JSON") from None
    if not isinstance(message, dict):
        raise malformed("not a JSON object")
    return message


def object_field(body: dict, key: str) -> dict:
    value = body.get(key)
    if not isinstance(value, dict):
        raise malformed(f"{key} must be an object")
    return value


def inner_type(inner: dict, what: str, known: dict) -> str:
    name = inner.get("type")
    if not isinstance(name, str):
        raise malformed(f"{what}.type must be a string")
    if name not in known:
        raise RequestError(NOT_SUPPORTED, f"not supported: unknown {what} type {name}")
    return name


def command_id_field(holder: dict, key: str) -> str | None:
    value = holder.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_COMMAND_ID:
        raise malformed(f"{key} must be a string of 1 to {MAX_COMMAND_ID} characters")
    return value


def version_field(holder: dict, key: str) -> int | None:
    value = holder.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_VERSION:
        raise malformed(f"{key} must be a non-negative integer")
    return value


def command_reply(msg_id: Any, result: dict) -> dict:
    if result["success"]:
        return {"type": "command_result", "in_reply_to": msg_id, "success": True,
                "events": result["events"]}
    return {"type": "command_result", "in_reply_to": msg_id, "success": False,
            "errors": result["errors"]}


def query_reply(msg_id: Any, data: Any) -> dict:
    return {"type": "query_result", "in_reply_to": msg_id, "data": data}


# ---- the program ----------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """run_node.py's flags (and CQRS_* variables); only three of them mean anything here."""
    env = os.environ
    truthy = ("1", "true", "yes", "on")
    ap = argparse.ArgumentParser(description="Benchmark baseline: the node's protocol in one "
                                             "plain process, all in memory.")
    ap.add_argument("--envelope", action="store_true",
                    default=env.get("CQRS_ENVELOPE", "").strip().lower() in truthy,
                    help="wrap replies as {src, dest, body} [env CQRS_ENVELOPE=1]")
    ap.add_argument("--no-sample-data", action="store_true",
                    default=env.get("CQRS_NO_SAMPLE_DATA", "").strip().lower() in truthy,
                    help="start with no sample users [env CQRS_NO_SAMPLE_DATA=1]")
    ap.add_argument("--max-line", type=int, default=int(env.get("CQRS_MAX_LINE", MAX_LINE)),
                    help="longest accepted input line in bytes [env CQRS_MAX_LINE]")
    ignored = ("--data-dir", "--sync", "--timeout", "--read-replicas", "--runtime-dir",
               "--events-endpoint", "--catchup-endpoint", "--write-endpoint",
               "--read-endpoint", "--client-endpoint")
    for flag in ignored:
        ap.add_argument(flag, help="accepted for compatibility with run_node.py; ignored")
    return ap.parse_args(argv)


class StopReading(Exception):
    """SIGTERM or SIGINT arrived while waiting for input."""


class Signals:
    """SIGTERM and SIGINT end the input: the request being handled is still answered."""

    def __init__(self) -> None:
        self.stop = False
        self.waiting = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop = True
        if self.waiting:
            raise StopReading


def serve(node: Node, stdin, stdout, signals: Signals) -> None:
    """Read a line, answer it, flush; until end of input or a signal."""
    requests = read_requests(stdin, node.max_line)
    while not signals.stop:
        try:
            signals.waiting = True
            request = next(requests)
        except (StopIteration, StopReading):
            return
        finally:
            signals.waiting = False
        stdout.write(node.handle(request).encode() + b"\n")
        stdout.flush()


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    node = Node(envelope=options.envelope, max_line=options.max_line,
                sample_data=not options.no_sample_data)
    try:
        serve(node, sys.stdin.buffer, sys.stdout.buffer, Signals())
    except BrokenPipeError:  # nobody reads the replies any more
        sys.stderr.write("baseline: stdout closed\n")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
