"""The protocol's error codes (Maelstrom's), their text prefixes, and error replies.

Every error a client can see is built here, so a code always means the same
thing (docs/protocol.md, section 6):

  0   timeout: no answer in time; for a command the outcome is unknown
  10  not supported: an unknown message, command or query type
  11  temporarily unavailable: the request certainly did not run; a retry is safe
  12  malformed request: not JSON, wrong shape, ill-typed or out-of-range values
  13  crash: an internal error; the node logs it and goes on
"""
from __future__ import annotations

from typing import Any

TIMEOUT = 0
NOT_SUPPORTED = 10
UNAVAILABLE = 11
MALFORMED = 12
CRASH = 13

PREFIX = {
    TIMEOUT: "timeout",
    NOT_SUPPORTED: "not supported",
    UNAVAILABLE: "temporarily unavailable",
    MALFORMED: "malformed request",
    CRASH: "crash",
}

# The largest integer every process can carry on the wire (msgpack's signed 64 bits).
INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
OUT_OF_RANGE = "a value is out of range"


def text(code: int, detail: str) -> str:
    """The error text: the code's prefix, then what went wrong."""
    return f"{PREFIX[code]}: {detail}"


class ProtocolError(Exception):
    """A request answered with an error reply instead of a result."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(text(code, detail))
        self.code = code
        self.text = text(code, detail)

    def as_pair(self) -> list:
        """[code, text]: how an error travels between the node's processes."""
        return [self.code, self.text]


def pair(code: int, detail: str) -> list:
    """[code, text] for a back-end's result (see common.wire)."""
    return [code, text(code, detail)]


def reply(msg_id: Any, code: int, error_text: str) -> dict:
    """The error reply body, keys in the protocol's order; `error_text` is a full text."""
    return {"type": "error", "in_reply_to": msg_id, "code": code, "text": error_text}


def fits_int64(value: Any) -> bool:
    """An int (not a bool) that the wire can carry."""
    return type(value) is int and INT64_MIN <= value <= INT64_MAX
