"""Dialect classification and the errors answered by the router itself."""
import json
import math

import pytest

from router.lines import Oversized
from router.parse import parse


def p(obj):
    return parse(json.dumps(obj).encode(), 1 << 20)


def test_bus_command_and_query():
    command = p({"src": "c", "dest": "n", "body": {"type": "RenameUser", "msg_id": 3,
                                               "payload": {"id": "u"}, "expected_version": 2,
                                               "command_id": "k1"}})
    assert (command.kind, command.context, command.name, command.msg_id, command.src, command.dest) == (
        "command", "directory", "RenameUser", 3, "c", "n")
    assert (command.expected_version, command.command_id, command.args) == (2, "k1", {"id": "u"})
    query = p({"type": "FindUserByEmail", "msg_id": 4, "params": {"email": "a@b.c"}})
    assert (query.kind, query.context) == ("query", "directory")


def test_envelope_command_and_query():
    command = p({"type": "command", "msg_id": 1, "command": {"type": "DeleteUser", "payload": {},
                                                         "expectedVersion": 0, "commandId": "x"}})
    assert (command.kind, command.context, command.name, command.expected_version, command.command_id) == (
        "command", "accounts", "DeleteUser", 0, "x")
    query = p({"type": "query", "msg_id": 2, "query": {"type": "GetUserHistory", "params": {}}})
    assert (query.kind, query.context, query.name) == ("query", "accounts", "GetUserHistory")


@pytest.mark.parametrize("line, code, msg_id", [
    (b"not json", 12, None),
    (b"[1, 2]", 12, None),
    (b'{"msg_id": 5}', 12, 5),
    (b'{"type": 7, "msg_id": 5}', 12, 5),
    (b'{"body": "x"}', 12, None),
    (b'{"type": "Frobnicate", "msg_id": 6}', 10, 6),
    (b'{"type": "command", "msg_id": 7}', 12, 7),
    (b'{"type": "command", "msg_id": 8, "command": {"type": "GetUser"}}', 10, 8),
    (b'{"type": "query", "msg_id": 9, "query": {"type": "CreateUser"}}', 10, 9),
    (b'{"type": "RenameUser", "msg_id": 10, "expected_version": "1"}', 12, 10),
    (b'{"type": "RenameUser", "msg_id": 11, "expected_version": true}', 12, 11),
    (b'{"type": "RenameUser", "msg_id": 12, "command_id": ""}', 12, 12),
    (b'{"type": "RenameUser", "msg_id": 13, "command_id": "' + b"k" * 129 + b'"}', 12, 13),
    (b"\xff\xfe", 12, None),
])
def test_errors(line, code, msg_id):
    parsed = parse(line, 1 << 20)
    assert parsed.kind == "error"
    assert (parsed.error[0], parsed.msg_id) == (code, msg_id)


def test_oversized_line_keeps_msg_id_when_it_can():
    parsed = parse(Oversized(head=b'{"body": {"msg_id": 42, "type": "x', tail=b'"}}', size=9),
                   8)
    assert (parsed.kind, parsed.msg_id, parsed.error[0]) == ("error", 42, 12)
    assert parse(Oversized(head=b"{{{", tail=b"}}}", size=9), 8).msg_id is None


def test_init_and_stats():
    assert p({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]}).kind == "init"
    assert p({"type": "stats", "msg_id": 1}).kind == "stats"


def test_nesting_deeper_than_the_stack_is_invalid_json():
    got = parse(("[" * 100_000 + "]" * 100_000).encode(), 1 << 22)
    assert (got.kind, got.error) == ("error", [12, "malformed request: invalid JSON"])


@pytest.mark.parametrize("raw", [b'{"type": "init", "msg_id": 1}', b' \t{"type": "init"}\r\n ',
                                 b'{"type": "init"} x', b'{"type": "init"}{}', b'', b'   ',
                                 b'\xef\xbb\xbf{"type": "init"}', b'{"a": NaN, "type": "init"}',
                                 b'\xa0{"type": "init"}', '\u00a0{"type": "init"}'.encode(),
                                 b'{"type": "\xff"}', b'[1, 2]', b'"text"', b'1e400'])
def test_json_is_read_exactly_as_strict_json_reads_it(raw):
    def no_constants(name):
        raise ValueError(name)

    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
        valid = not (isinstance(value, float) and math.isinf(value))
    except ValueError:
        valid = False
    got = parse(raw, 1 << 20)
    assert (got.error != [12, "malformed request: invalid JSON"]) == valid


@pytest.mark.parametrize("line", [
    b'{"type": "init", "msg_id": NaN}',
    b'{"type": "init", "msg_id": Infinity}',
    b'{"type": "init", "msg_id": -Infinity}',
    b'{"type": "CreateUser", "msg_id": 1, "payload": {"age": 1e400}}',
    b'{"type": "CreateUser", "msg_id": 1, "payload": {"age": -1e999}}',
])
def test_non_json_numbers_are_malformed(line):
    got = parse(line, 1 << 20)
    assert got.kind == "error" and got.error[0] == 12 and got.msg_id is None
