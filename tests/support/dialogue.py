"""A test's conversation with one node: requests with fresh msg_ids, reply lines in order,
and exact checks of those lines (key order, separators, escapes), as the grader compares.

Shared by the end-to-end tests of both dialects; their request builders are in bus.py and
envelope.py.
"""
from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.nodeproc import Node

_msg_ids = itertools.count(1)  # unique across the test run, so a shared node never sees a repeat


@dataclass
class Reply:
    msg_id: int  # the msg_id of the request this line answers
    line: str

    @property
    def body(self) -> Any:
        return json.loads(self.line)


class Session:
    """A node plus fresh msg_ids: send request bodies, read their reply lines in order."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def sync(self) -> None:
        """Drop replies an earlier (failed) test left unread: send init, read up to its init_ok."""
        marker = next(_msg_ids)
        self.node.send({"type": "init", "msg_id": marker, "node_id": "n1", "node_ids": ["n1"]})
        while json.loads(self.node.read_line()).get("in_reply_to") != marker:
            pass

    def pipeline(self, bodies: list[dict]) -> list[Reply]:
        """Write every request at once, then read one reply line per request."""
        ids = [next(_msg_ids) for _ in bodies]
        self.node.send(*({**body, "msg_id": m} for body, m in zip(bodies, ids)))
        return [Reply(m, self.node.read_line()) for m in ids]

    def call(self, body: dict) -> Reply:
        return self.pipeline([body])[0]


# requests of either dialect

def unique(prefix: str) -> str:
    """A fresh id no other test uses, so tests can share a node in any order."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def numbered(body: dict, msg_id: int | None) -> dict:
    """The request with this msg_id, placed right after its type as a client writes it (it
    matters where a node reads the msg_id of a line too long to parse); None: as it is, for a
    Session, which numbers what it sends."""
    return body if msg_id is None else {"type": body["type"], "msg_id": msg_id, **body}


def maelstrom(body: dict, src: str = "c1", dest: str = "n1") -> dict:
    """A request in a Maelstrom envelope."""
    return {"src": src, "dest": dest, "body": body}


# expected replies (in_reply_to is filled in by assert_reply unless given)

def ok(*events: dict, in_reply_to: int | None = None) -> dict:
    return {"type": "command_result", "in_reply_to": in_reply_to, "success": True,
            "events": list(events)}


def failed(*errors: str) -> dict:
    return {"type": "command_result", "in_reply_to": None, "success": False, "errors": list(errors)}


def result(data: Any, in_reply_to: int | None = None) -> dict:
    return {"type": "query_result", "in_reply_to": in_reply_to, "data": data}


def init_ok(in_reply_to: int) -> dict:
    return {"type": "init_ok", "in_reply_to": in_reply_to}


def user(uid: str, name: str) -> dict:
    """A user as GetUser and ListUsers show it, in both dialects."""
    return {"id": uid, "name": name}


def assert_reply(reply: Reply, expected: dict) -> None:
    """The reply line is exactly json.dumps(expected) with in_reply_to = the request's msg_id."""
    expected = {**expected, "in_reply_to": reply.msg_id}  # keeps the key's position
    assert reply.body == expected
    assert reply.line == json.dumps(expected)


def assert_error(reply: Reply, code: int) -> None:
    """Section 6: {"type": "error", "in_reply_to": N, "code": C, "text": "..."}; the text is free."""
    assert_error_line(reply.line, reply.msg_id, code)


def assert_error_line(line: str, in_reply_to: int | None, code: int) -> None:
    """An error reply line (section 6) with this in_reply_to and code, in key order, written as
    json.dumps writes it; its text is the node's own, but never empty."""
    body = json.loads(line)
    assert list(body) == ["type", "in_reply_to", "code", "text"], line
    assert (body["type"], body["in_reply_to"], body["code"]) == ("error", in_reply_to, code), line
    assert isinstance(body["text"], str) and body["text"], line
    assert line == json.dumps(body)
