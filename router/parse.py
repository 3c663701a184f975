"""Turns one input line into an internal request, or the error that answers it at once.

The body's `type` picks the dialect: "command"/"query" wrap an envelope-dialect
operation; a bus command or query name is the operation itself. Which context
serves a name comes from common.contexts, so a new context needs no edit here.
"""
from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from common.contexts import routes
from common import errors
from common.errors import MALFORMED, NOT_SUPPORTED, ProtocolError
from router.lines import Oversized

_BUS_COMMANDS = routes("bus", "command")
_BUS_QUERIES = routes("bus", "query")
_ENVELOPE_COMMANDS = routes("envelope", "command")
_ENVELOPE_QUERIES = routes("envelope", "query")
_MSG_ID = re.compile(rb'"msg_id"\s*:\s*(-?\d{1,18})\b')
MAX_COMMAND_ID = 128
# Queries whose params are all optional (docs/protocol.md): a request without params is a
# good one, so it gets no hint.
_PARAMS_OPTIONAL = frozenset({"ListUsers"})
log = logging.getLogger("router")


class MissingObjectHint:
    """One stderr line about a request without its payload, params, command or query
    object: the object expected and the shape of a good request. The reply stays what the
    protocol says (for a command, the validation errors of an empty payload; for a query,
    error 12); the line is for the person who wrote the request, who otherwise sees only
    "Name is required" and has to guess why. At most one line a second, so a flood of such
    requests cannot flood the log."""

    def __init__(self, every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.last = -math.inf  # clock time of the last line
        self.held = 0  # requests left without a line since then

    def __call__(self, msg_id: Any, missing: str, good: str) -> None:
        now = self.clock()
        if now - self.last < self.every:
            self.held += 1
            return
        more = f" ({self.held} more such requests since the last line)" if self.held else ""
        self.last, self.held = now, 0
        shown = json.dumps(msg_id)  # escaped, so the line stays one line
        if len(shown) > 60:  # a msg_id may be any JSON value, of any size
            shown = shown[:57] + "..."
        log.warning("request msg_id %s has no %s object; a good request looks like %s "
                    "(docs/protocol.md)%s", shown, missing, good, more)


hint_missing = MissingObjectHint()


@dataclass(slots=True)
class Parsed:
    """One request line, understood.

    kind: "command" or "query" (for a back-end), "init", "stats", or "error" (answered at once).
    """
    kind: str
    msg_id: Any = None
    src: Any = None
    dest: Any = None
    context: str = ""
    name: str = ""
    args: Any = None
    command_id: str | None = None
    expected_version: int | None = None
    error: list | None = field(default=None)  # [code, text] (common.errors)




def _not_json(constant: str) -> Any:
    """NaN, Infinity and -Infinity are Python's extensions, not JSON: refused."""
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    """A JSON number Python would read as infinity (1e400) is refused as well: no reply or
    stored event may ever carry one."""
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text} is out of range")
    return value


_raw_decode = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite).raw_decode
_JSON_SPACE = " \t\n\r"  # the only white space JSON allows around a value


def _loads(line: bytes) -> Any:
    """json.loads(line) for a UTF-8 line, in half the time: no encoding detection and
    no white-space regular expressions. Raises ValueError as json.loads does."""
    text = line.decode("utf-8").strip(_JSON_SPACE)
    value, end = _raw_decode(text)
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def parse(line: bytes | Oversized, max_line: int) -> Parsed:
    if isinstance(line, Oversized):
        match = _MSG_ID.search(line.head) or _MSG_ID.search(line.tail)
        return Parsed("error", msg_id=int(match.group(1)) if match else None,
                      error=errors.pair(MALFORMED, f"line of {line.size} bytes exceeds "
                                                   f"the limit of {max_line} bytes"))
    try:
        obj = _loads(line)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        return Parsed("error", error=errors.pair(MALFORMED, "invalid JSON"))
    if not isinstance(obj, dict):
        return Parsed("error", error=errors.pair(MALFORMED, "not a JSON object"))
    src = dest = None
    body = obj
    if "body" in obj:
        body, src, dest = obj["body"], obj.get("src"), obj.get("dest")
        if not isinstance(body, dict):
            return Parsed("error", src=src, dest=dest,
                          error=errors.pair(MALFORMED, "body is not an object"))
    msg_id = body.get("msg_id")
    try:
        parsed = _classify(body)
    except ProtocolError as bad:
        parsed = Parsed("error", error=bad.as_pair())
    parsed.msg_id, parsed.src, parsed.dest = msg_id, src, dest
    return parsed


def _classify(body: dict) -> Parsed:
    type_ = body.get("type")
    if type_ is None:
        raise ProtocolError(MALFORMED, "missing type")
    if not isinstance(type_, str):
        raise ProtocolError(MALFORMED, "type must be a string")
    if type_ in ("init", "stats"):
        return Parsed(type_)
    if type_ == "command":
        if body.get("command") is None:
            hint_missing(body.get("msg_id"), "command",
                         '{"type": "command", "msg_id": 1, "command": {"type": "CreateUser", '
                         '"payload": {...}}}')
        inner = _object(body, "command")
        context = _route(inner, _ENVELOPE_COMMANDS, "command")
        payload = inner.get("payload")
        if payload is None:
            hint_missing(body.get("msg_id"), "command.payload",
                         f'{{"type": "command", "msg_id": 1, "command": {{"type": '
                         f'{json.dumps(inner["type"])}, "payload": {{...}}}}}}')
        return Parsed("command", context=context, name=inner["type"], args=payload,
                      command_id=_command_id(inner, "commandId"),
                      expected_version=_version(inner, "expectedVersion"))
    if type_ == "query":
        if body.get("query") is None:
            hint_missing(body.get("msg_id"), "query",
                         '{"type": "query", "msg_id": 1, "query": {"type": "GetUser", '
                         '"params": {...}}}')
        inner = _object(body, "query")
        context = _route(inner, _ENVELOPE_QUERIES, "query")
        params = inner.get("params")
        if params is None and inner["type"] not in _PARAMS_OPTIONAL:
            hint_missing(body.get("msg_id"), "query.params",
                         f'{{"type": "query", "msg_id": 1, "query": {{"type": '
                         f'{json.dumps(inner["type"])}, "params": {{...}}}}}}')
        return Parsed("query", context=context, name=inner["type"], args=params)
    if type_ in _BUS_COMMANDS:
        payload = body.get("payload")
        if payload is None:
            hint_missing(body.get("msg_id"), "payload",
                         f'{{"type": {json.dumps(type_)}, "msg_id": 1, "payload": {{...}}}}')
        return Parsed("command", context=_BUS_COMMANDS[type_], name=type_, args=payload,
                      command_id=_command_id(body, "command_id"),
                      expected_version=_version(body, "expected_version"))
    if type_ in _BUS_QUERIES:
        params = body.get("params")
        if params is None and type_ not in _PARAMS_OPTIONAL:
            hint_missing(body.get("msg_id"), "params",
                         f'{{"type": {json.dumps(type_)}, "msg_id": 1, "params": {{...}}}}')
        return Parsed("query", context=_BUS_QUERIES[type_], name=type_, args=params)
    raise ProtocolError(NOT_SUPPORTED, f"unknown message type {type_}")


def _object(body: dict, key: str) -> dict:
    inner = body.get(key)
    if not isinstance(inner, dict):
        raise ProtocolError(MALFORMED, f"{key} must be an object")
    return inner


def _route(inner: dict, table: dict[str, str], what: str) -> str:
    name = inner.get("type")
    if not isinstance(name, str):
        raise ProtocolError(MALFORMED, f"{what}.type must be a string")
    if name not in table:
        raise ProtocolError(NOT_SUPPORTED, f"unknown {what} type {name}")
    return table[name]


def _version(holder: dict, key: str) -> int | None:
    value = holder.get(key)
    if value is None:
        return None
    if not errors.fits_int64(value) or value < 0:
        raise ProtocolError(MALFORMED, f"{key} must be a non-negative integer")
    return value


def _command_id(holder: dict, key: str) -> str | None:
    value = holder.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_COMMAND_ID:
        raise ProtocolError(MALFORMED,
                            f"{key} must be a string of 1 to {MAX_COMMAND_ID} characters")
    return value
