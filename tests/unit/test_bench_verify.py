"""The benchmark's reply verifier (bench/verify.py): it accepts right replies and refuses
wrong ones, so no number is reported for a node that answers wrongly."""
from __future__ import annotations

import json

import pytest

from bench import messages
from bench.verify import ReplyMismatch, verify


def _good() -> tuple[list[dict], list[str]]:
    """Expected replies and matching reply lines for a create-then-get pair."""
    pairs = [messages.env_create(2, "u1", "Ann"), messages.env_get(3, "u1", "Ann")]
    _, expected = messages.split(pairs)
    lines = [json.dumps({"type": "command_result", "in_reply_to": 2, "success": True,
                         "events": [{"eventType": "UserCreated", "aggregateId": "u1"}]}),
             json.dumps({"type": "query_result", "in_reply_to": 3,
                         "data": {"id": "u1", "name": "Ann"}})]
    return expected, lines


def test_verifier_accepts_right_replies():
    expected, lines = _good()
    verify(expected, lines)
    verify(expected, [line.encode() for line in lines])


@pytest.mark.parametrize("mangle", [
    lambda ls: ls[:1],                                               # a reply missing
    lambda ls: ls + ls[1:],                                          # one too many
    lambda ls: ls[::-1],                                             # out of order
    lambda ls: [ls[0].replace("true", "false"), ls[1]],              # command failed
    lambda ls: [ls[0], ls[1].replace('{"id": "u1", "name": "Ann"}', "null")],  # query missed it
    lambda ls: [ls[0], ls[1].replace('"in_reply_to": 3', '"in_reply_to": 4')],
    lambda ls: [ls[0], ls[1].replace('"Ann"', '"Bob"')],
    lambda ls: [ls[0], '{"type": "error", "in_reply_to": 3, "code": 0, "text": "timeout"}'],
    lambda ls: [ls[0], "not json"],
], ids=["missing", "extra", "order", "failed", "stale", "in_reply_to", "data", "error", "garbage"])
def test_verifier_rejects_wrong_replies(mangle):
    expected, lines = _good()
    with pytest.raises(ReplyMismatch):
        verify(expected, mangle(lines))
