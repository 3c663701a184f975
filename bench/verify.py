"""Checks every reply of a run, so a broken node cannot post a fast number."""
from __future__ import annotations

import json
from typing import Any


class ReplyMismatch(AssertionError):
    """A reply is missing, out of order, malformed or not what the request called for."""


def matches(expected: Any, actual: Any) -> bool:
    """True when actual has every key of expected with a matching value (lists: same length)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(matches(e, a) for e, a in zip(expected, actual)))
    # bool is an int in Python: keep True from matching 1 and the other way round.
    return type(expected) is type(actual) and expected == actual


def _parse(index: int, line: bytes | str) -> Any:
    try:
        reply = json.loads(line)
    except ValueError:
        raise ReplyMismatch(f"reply {index} is not JSON: {line[:200]!r}") from None
    return _unwrap(reply)


def _unwrap(reply: Any) -> Any:
    # A node run with --envelope wraps each reply; the body is what matters here.
    if isinstance(reply, dict) and "body" in reply and "type" not in reply:
        return reply["body"]
    return reply


def body(line: bytes | str) -> Any:
    """A reply line's body (unwrapped when the node wraps replies); None when it is not JSON."""
    try:
        return _unwrap(json.loads(line))
    except ValueError:
        return None


def verify(expected: list[dict[str, Any]], lines: list[bytes] | list[str]) -> None:
    """Raise ReplyMismatch unless there is one reply per request, in order, each as expected."""
    if len(lines) != len(expected):
        raise ReplyMismatch(f"{len(lines)} replies for {len(expected)} requests")
    for index, (want, line) in enumerate(zip(expected, lines)):
        got = _parse(index, line)
        if not matches(want, got):
            raise ReplyMismatch(f"reply {index}: expected {json.dumps(want)[:300]}, "
                                f"got {json.dumps(got)[:300]}")
