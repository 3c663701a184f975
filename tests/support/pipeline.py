"""Many numbered requests through one node, pipelined: written a chunk at a time, one reply
read per request, in order."""
from __future__ import annotations

from tests.support.nodeproc import Node

TIMEOUT = 60.0  # per reply; generous: a busy 2-core machine


def run_all(node: Node, messages: list[dict], chunk: int = 5_000,
            timeout: float = TIMEOUT) -> list[dict]:
    """Pipeline the messages `chunk` at a time (a whole script at once could outlast the
    node's deadline), reading one reply each; the replies, each checked to answer its request."""
    replies = []
    for start in range(0, len(messages), chunk):
        part = messages[start:start + chunk]
        node.send(*part)
        replies += [node.read(timeout=timeout) for _ in part]
    assert [r.get("in_reply_to") for r in replies] == [m["msg_id"] for m in messages]
    return replies


def assert_all_succeeded(replies: list[dict]) -> None:
    failed = [r for r in replies if r.get("success") is not True]
    assert not failed, failed[:3]


def run_commands(node: Node, messages: list[dict], chunk: int = 5_000) -> list[dict]:
    """run_all for commands that must all succeed; their replies."""
    replies = run_all(node, messages, chunk)
    assert_all_succeeded(replies)
    return replies
