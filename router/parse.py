"""Turns one input line into an internal request, or the error that answers it at once.

The body's `type` picks the dialect: "command"/"query" wrap an envelope-dialect
operation; a bus command or query name is the operation itself. Which context
serves a name comes from common.contexts, so a new context needs no edit here.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from common.contexts import routes
from router.lines import Oversized

_BUS_COMMANDS = routes("bus", "commands")
_BUS_QUERIES = routes("bus", "queries")
_ENVELOPE_COMMANDS = routes("envelope", "commands")
_ENVELOPE_QUERIES = routes("envelope", "queries")
_MSG_ID = re.compile(rb'"msg_id"\s*:\s*(-?\d{1,18})\b')
MAX_COMMAND_ID = 128


@dataclass(slots=True)
class Parsed:
    """One request line, understood.

    kind: "cmd" or "qry" (for a back-end), "init", "stats", or "error" (answered at once).
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
    error: tuple[int, str] | None = field(default=None)


class Malformed(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


_raw_decode = json.JSONDecoder().raw_decode
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
                      error=(12, f"malformed request: line of {line.size} bytes exceeds the "
                                 f"limit of {max_line} bytes"))
    try:
        obj = _loads(line)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        return Parsed("error", error=(12, "malformed request: invalid JSON"))
    if not isinstance(obj, dict):
        return Parsed("error", error=(12, "malformed request: not a JSON object"))
    src = dest = None
    body = obj
    if "body" in obj:
        body, src, dest = obj["body"], obj.get("src"), obj.get("dest")
        if not isinstance(body, dict):
            return Parsed("error", src=src, dest=dest,
                          error=(12, "malformed request: body is not an object"))
    msg_id = body.get("msg_id")
    try:
        parsed = _classify(body)
    except Malformed as bad:
        parsed = Parsed("error", error=(bad.code, bad.text))
    parsed.msg_id, parsed.src, parsed.dest = msg_id, src, dest
    return parsed


def _classify(body: dict) -> Parsed:
    type_ = body.get("type")
    if type_ is None:
        raise Malformed(12, "malformed request: missing type")
    if not isinstance(type_, str):
        raise Malformed(12, "malformed request: type must be a string")
    if type_ in ("init", "stats"):
        return Parsed(type_)
    if type_ == "command":
        inner = _object(body, "command")
        context = _route(inner, _ENVELOPE_COMMANDS, "command")
        return Parsed("cmd", context=context, name=inner["type"], args=inner.get("payload"),
                      command_id=_command_id(inner, "commandId"),
                      expected_version=_version(inner, "expectedVersion"))
    if type_ == "query":
        inner = _object(body, "query")
        context = _route(inner, _ENVELOPE_QUERIES, "query")
        return Parsed("qry", context=context, name=inner["type"], args=inner.get("params"))
    if type_ in _BUS_COMMANDS:
        return Parsed("cmd", context=_BUS_COMMANDS[type_], name=type_, args=body.get("payload"),
                      command_id=_command_id(body, "command_id"),
                      expected_version=_version(body, "expected_version"))
    if type_ in _BUS_QUERIES:
        return Parsed("qry", context=_BUS_QUERIES[type_], name=type_, args=body.get("params"))
    raise Malformed(10, f"not supported: unknown message type {type_}")


def _object(body: dict, key: str) -> dict:
    inner = body.get(key)
    if not isinstance(inner, dict):
        raise Malformed(12, f"malformed request: {key} must be an object")
    return inner


def _route(inner: dict, table: dict[str, str], what: str) -> str:
    name = inner.get("type")
    if not isinstance(name, str):
        raise Malformed(12, f"malformed request: {what}.type must be a string")
    if name not in table:
        raise Malformed(10, f"not supported: unknown {what} type {name}")
    return table[name]


def _version(holder: dict, key: str) -> int | None:
    value = holder.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 62:
        raise Malformed(12, f"malformed request: {key} must be a non-negative integer")
    return value


def _command_id(holder: dict, key: str) -> str | None:
    value = holder.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_COMMAND_ID:
        raise Malformed(12, f"malformed request: {key} must be a string of 1 to "
                            f"{MAX_COMMAND_ID} characters")
    return value
