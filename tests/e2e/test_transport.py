"""End-to-end transport tests: PROTOCOL.md sections 1 (lines), 2 (routing) and 6 (errors).

Each test starts a real run_node.py and compares reply lines as text, the way the grader does.
Error texts are not fixed by PROTOCOL.md, so error replies are checked on type, in_reply_to,
code, key order and a non-empty text.
"""
from __future__ import annotations

import fcntl
import itertools
import json
import signal

import pytest

from tests.support import bus, envelope
from tests.support.dialogue import assert_error_line, init_ok, maelstrom, ok, result
from tests.support.formats import UUID
from tests.support.nodeproc import alive, cmdline, encode, run_lines, wait_until


# -- reply checks ----------------------------------------------------------------------

def assert_exact(line: str, expected: dict) -> None:
    """The raw line is exactly json.dumps(expected): same keys, order, separators, escapes."""
    assert line == json.dumps(expected)


# -- section 1: reply text, input forms ------------------------------------------------

def test_reply_text_is_json_dumps_with_ascii_escapes(node):
    """Non-ASCII names come back \\u-escaped, with json.dumps separators and key order."""
    name = "J\u00f6rg \u2603 \u65e5\u672c"
    node.send(bus.create(name, "jorg@example.com", msg_id=1))
    line = node.read_line()
    assert "J\\u00f6rg \\u2603 \\u65e5\\u672c" in line
    user_id = json.loads(line)["events"][0]["payload"]["id"]
    assert UUID.fullmatch(user_id)
    assert_exact(line, ok(bus.user_created(user_id, name), in_reply_to=1))

    node.send(bus.get_user(user_id, msg_id=2), envelope.create("acc-\u00e9", name, msg_id=3),
              envelope.get_user("acc-\u00e9", msg_id=4))
    assert_exact(node.read_line(), result({"id": user_id, "name": name}, in_reply_to=2))
    assert_exact(node.read_line(), {"type": "command_result", "in_reply_to": 3, "success": True,
                                    "events": [{"eventType": "UserCreated", "aggregateId": "acc-\u00e9"}]})
    assert_exact(node.read_line(), result({"id": "acc-\u00e9", "name": name}, in_reply_to=4))


def test_envelope_and_bare_body_get_the_same_reply(node):
    """A Maelstrom envelope and a bare body are both accepted; default replies are bare bodies."""
    node.send(maelstrom(bus.get_user("user-123", msg_id=1)), bus.get_user("user-123", msg_id=2),
              maelstrom(envelope.get_user("user-123", msg_id=3)),
              envelope.get_user("user-123", msg_id=4),
              maelstrom({"type": "init", "msg_id": 5, "node_id": "n1", "node_ids": ["n1"]}))
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John Doe"}, in_reply_to=1))
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John Doe"}, in_reply_to=2))
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John"}, in_reply_to=3))
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John"}, in_reply_to=4))
    assert_exact(node.read_line(), init_ok(5))


def test_dest_never_changes_routing(node):
    """Section 2: body.type routes; an unexpected dest is informational only."""
    node.send(maelstrom(bus.get_user("user-123", msg_id=1), dest="write-side"),
              maelstrom(envelope.get_user("user-123", msg_id=2), dest="nobody"))
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John Doe"}, in_reply_to=1))
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John"}, in_reply_to=2))


def test_blank_lines_get_no_reply():
    """Blank lines (empty or only whitespace, our reading of 'blank') are skipped without a reply."""
    lines = ["", {"type": "init", "msg_id": 1}, "", "   ", "\t", bus.get_user("user-123", msg_id=2), ""]
    out, code, _ = run_lines(lines)
    assert out == [json.dumps(init_ok(1)),
                   json.dumps(result({"id": "user-123", "name": "John Doe"}, in_reply_to=2))]
    assert code == 0


@pytest.mark.parametrize("args,env", [(["--envelope"], None), ([], {"CQRS_ENVELOPE": "1"})],
                         ids=["flag", "env"])
def test_envelope_mode_wraps_replies(node_factory, args, env):
    """--envelope / CQRS_ENVELOPE=1: {"src": request dest, "dest": request src, "body": reply}."""
    node = node_factory(*args, env=env)
    node.send(maelstrom({"type": "init", "msg_id": 1, "node_id": "n7", "node_ids": ["n7"]},
                        src="c9", dest="n7"),
              maelstrom(bus.get_user("user-123", msg_id=2), src="c2", dest="n1"),
              maelstrom(envelope.create("w-1", "W", msg_id=3), src="c3", dest="n2"),
              maelstrom({"type": "nope", "msg_id": 4}, src="c4", dest="n4"))
    assert_exact(node.read_line(), {"src": "n7", "dest": "c9", "body": init_ok(1)})
    assert_exact(node.read_line(), {"src": "n1", "dest": "c2",
                                    "body": result({"id": "user-123", "name": "John Doe"}, in_reply_to=2)})
    assert_exact(node.read_line(), {"src": "n2", "dest": "c3", "body": {
        "type": "command_result", "in_reply_to": 3, "success": True,
        "events": [{"eventType": "UserCreated", "aggregateId": "w-1"}]}})
    wrapped = json.loads(node.read_line())
    assert list(wrapped) == ["src", "dest", "body"]
    assert (wrapped["src"], wrapped["dest"]) == ("n4", "c4")
    assert_error_line(json.dumps(wrapped["body"]), 4, 10)


# -- section 2: router messages and unknown types --------------------------------------

def test_init_ok(node):
    node.send({"type": "init", "msg_id": 17, "node_id": "n1", "node_ids": ["n1", "n2"]})
    assert_exact(node.read_line(), init_ok(17))


def test_stats_result(node):
    """stats -> {"type": "stats_result", "in_reply_to": N, "data": {...}}, nothing else."""
    node.send({"type": "stats", "msg_id": 5})
    line = node.read_line()
    reply = json.loads(line)
    assert line == json.dumps(reply)
    assert list(reply) == ["type", "in_reply_to", "data"]
    assert (reply["type"], reply["in_reply_to"]) == ("stats_result", 5)
    assert isinstance(reply["data"], dict)


@pytest.mark.parametrize("message", [
    {"type": "frobnicate", "msg_id": 3},
    {"type": "DeleteUser", "msg_id": 3, "payload": {"id": "user-123"}},  # accounts-only name, not a bus command
    {"type": "getuser", "msg_id": 3, "params": {"user_id": "user-123"}},  # names are case-sensitive
    {"type": "command", "msg_id": 3, "command": {"type": "Nope", "payload": {"id": "x"}}},
    {"type": "command", "msg_id": 3, "command": {"type": "GetUser", "payload": {"id": "x"}}},
    {"type": "query", "msg_id": 3, "query": {"type": "Nope", "params": {}}},
    {"type": "query", "msg_id": 3, "query": {"type": "CreateUser", "params": {"userId": "x"}}},
], ids=["unknown", "bus-DeleteUser", "lowercase", "env-cmd", "env-cmd-is-query",
        "env-query", "env-query-is-cmd"])
def test_unknown_types_are_code_10(node, message):
    node.send(message, bus.get_user("user-123", msg_id=4))
    assert_error_line(node.read_line(), 3, 10)
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John Doe"}, in_reply_to=4))


# -- section 6: malformed input --------------------------------------------------------

@pytest.mark.parametrize("line,in_reply_to", [
    ("{not json", None),
    ('{"type": "init", "msg_id": 1', None),
    (b"\xff\xfe garbage", None),
    ("[1, 2]", None),
    ("42", None),
    ('"init"', None),
    ("null", None),
    ('{"msg_id": 7}', 7),
    ('{"foo": "bar"}', None),
    ('{"src": "c1", "dest": "n1", "body": {"msg_id": 8}}', 8),
    ('{"src": "c1", "dest": "n1", "body": 5}', None),
    ('{"src": "c1", "dest": "n1", "body": [1]}', None),
    ('{"src": "c1", "dest": "n1", "body": "init"}', None),
], ids=["junk", "truncated", "not-utf8", "array", "number", "string", "null", "no-type-with-id",
        "no-type-no-id", "env-no-type", "body-number", "body-array", "body-string"])
def test_malformed_lines_are_code_12(node, line, in_reply_to):
    """Each bad line gets one error 12; in_reply_to is null when no msg_id could be read."""
    node.send(line, {"type": "init", "msg_id": 99})
    assert_error_line(node.read_line(), in_reply_to, 12)
    assert_exact(node.read_line(), init_ok(99))


def test_bad_lines_then_good_ones_all_answered_in_order():
    """A run of bad and good lines: one reply each, in input order, exit 0."""
    lines = ["{oops", bus.get_user("user-123", msg_id=1), "[]", {"type": "what", "msg_id": 2},
             {"msg_id": 3}, bus.create("Ann", "ann@example.com", msg_id=4), "}{",
             envelope.get_user("user-123", msg_id=5), '{"src": "a", "dest": "b", "body": null}',
             {"type": "init", "msg_id": 6}]
    out, code, _ = run_lines(lines)
    assert len(out) == 8 + 2, out
    assert_error_line(out[0], None, 12)
    assert_exact(out[1], result({"id": "user-123", "name": "John Doe"}, in_reply_to=1))
    assert_error_line(out[2], None, 12)
    assert_error_line(out[3], 2, 10)
    assert_error_line(out[4], 3, 12)
    ann = json.loads(out[5])["events"][0]["payload"]["id"]
    assert_exact(out[5], ok(bus.user_created(ann, "Ann"), in_reply_to=4))
    assert_error_line(out[6], None, 12)
    assert_exact(out[7], result({"id": "user-123", "name": "John"}, in_reply_to=5))
    assert_error_line(out[8], None, 12)
    assert_exact(out[9], init_ok(6))
    assert code == 0


def test_oversized_line_is_one_error_and_node_keeps_serving(node):
    """A 2 MiB line (default limit 1 MiB) -> exactly one error 12; what follows is served."""
    node.send(bus.create("Before", "before@example.com", msg_id=1))
    before = json.loads(node.read_line())["events"][0]["payload"]["id"]

    node.send_raw(b"x" * (2 << 20) + b"\n")  # no msg_id anywhere: in_reply_to must be null
    node.send({"type": "init", "msg_id": 2})
    assert_error_line(node.read_line(timeout=30), None, 12)
    assert_exact(node.read_line(), init_ok(2))

    big = json.dumps(bus.create("y" * (2 << 20), "big@example.com", msg_id=3)).encode()
    node.send_raw(big + b"\n")
    node.send(bus.get_user(before, msg_id=4), {"type": "FindUserByEmail", "msg_id": 5,
                                   "params": {"email": "big@example.com"}})
    reply = json.loads(node.read_line(timeout=30))
    # The msg_id sits at the start of the line; reading it is allowed but not required.
    assert reply["in_reply_to"] in (3, None)
    assert_error_line(json.dumps(reply), reply["in_reply_to"], 12)
    assert_exact(node.read_line(), result({"id": before, "name": "Before"}, in_reply_to=4))
    assert_exact(node.read_line(), result(None, in_reply_to=5))  # the oversized command stored nothing


def test_max_line_flag_sets_the_limit(node_factory):
    """--max-line N: a longer line is error 12, a shorter one is served."""
    node = node_factory("--max-line", "2000")
    node.send(bus.create("z" * 3000, "z@example.com", msg_id=1),
              bus.create("z" * 1000, "z@example.com", msg_id=2))
    first = json.loads(node.read_line())
    assert first["in_reply_to"] in (1, None)
    assert_error_line(json.dumps(first), first["in_reply_to"], 12)
    line = node.read_line()
    user_id = json.loads(line)["events"][0]["payload"]["id"]
    assert_exact(line, ok(bus.user_created(user_id, "z" * 1000), in_reply_to=2))


@pytest.mark.parametrize("message", [
    {"type": "RenameUser", "msg_id": 1, "expected_version": "1", "payload": {"id": "user-123", "name": "X"}},
    {"type": "RenameUser", "msg_id": 1, "expected_version": 1.5, "payload": {"id": "user-123", "name": "X"}},
    {"type": "RenameUser", "msg_id": 1, "expected_version": [1], "payload": {"id": "user-123", "name": "X"}},
    {"type": "RenameUser", "msg_id": 1, "expected_version": True, "payload": {"id": "user-123", "name": "X"}},
    {"type": "command", "msg_id": 1, "command": {"type": "RenameUser", "expectedVersion": "3",
                                                 "payload": {"id": "user-123", "name": "X"}}},
    {"type": "command", "msg_id": 1, "command": {"type": "RenameUser", "expectedVersion": {"v": 3},
                                                 "payload": {"id": "user-123", "name": "X"}}},
], ids=["bus-str", "bus-float", "bus-list", "bus-bool", "env-str", "env-object"])
def test_ill_typed_expected_version_is_code_12(node, message):
    """expected_version / expectedVersion must be an integer; otherwise error 12 and nothing stored."""
    node.send(message, bus.get_user("user-123", msg_id=2), envelope.get_user("user-123", msg_id=3))
    assert_error_line(node.read_line(), 1, 12)
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John Doe"}, in_reply_to=2))
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John"}, in_reply_to=3))


# -- ordering and pipelining -----------------------------------------------------------

def test_2000_pipelined_creates_closed_by_eof():
    """2,000 bus CreateUser lines then EOF: 2,000 successful replies in order, exit 0."""
    lines = [bus.create(f"user {i}", f"u{i}@example.com", msg_id=i) for i in range(1, 2001)]
    out, code, err = run_lines(lines, timeout=60)
    assert len(out) == 2000, err[-2000:]
    ids = set()
    for i, line in enumerate(out, start=1):
        user_id = json.loads(line)["events"][0]["payload"]["id"]
        assert_exact(line, ok(bus.user_created(user_id, f"user {i}"), in_reply_to=i))
        ids.add(user_id)
    assert len(ids) == 2000
    assert code == 0


def test_pipelined_queries_see_the_command_before_them():
    """200 command+query pairs of each dialect written at once: each query sees its command."""
    lines = []
    for i in range(200):
        lines.append(maelstrom(envelope.create(f"id-{i}", f"name-{i}", msg_id=4 * i + 1)))
        lines.append(maelstrom(envelope.get_user(f"id-{i}", msg_id=4 * i + 2)))
        lines.append({"type": "RenameUser", "msg_id": 4 * i + 3,
                      "payload": {"id": "user-123", "name": f"bus-{i}"}})
        lines.append(bus.get_user("user-123", msg_id=4 * i + 4))
    out, code, err = run_lines(lines, timeout=60)
    assert len(out) == 800, err[-2000:]
    for i in range(200):
        assert_exact(out[4 * i], {"type": "command_result", "in_reply_to": 4 * i + 1, "success": True,
                                  "events": [{"eventType": "UserCreated", "aggregateId": f"id-{i}"}]})
        assert_exact(out[4 * i + 1], result({"id": f"id-{i}", "name": f"name-{i}"}, in_reply_to=4 * i + 2))
        assert_exact(out[4 * i + 2], {"type": "command_result", "in_reply_to": 4 * i + 3, "success": True,
                                      "events": [{"type": "UserRenamed",
                                                  "payload": {"id": "user-123", "name": f"bus-{i}"}}]})
        assert_exact(out[4 * i + 3], result({"id": "user-123", "name": f"bus-{i}"}, in_reply_to=4 * i + 4))
    assert code == 0


# -- end of input, signals, processes --------------------------------------------------

def wait_for_children(node) -> set[int]:
    """The node's child processes once both back ends are up (found by their command lines)."""
    def both_up() -> bool:
        lines = [b" ".join(cmdline(pid)) for pid in node.children()]
        return any(b"write_side" in c for c in lines) and any(b"read_side" in c for c in lines)

    assert wait_until(both_up, timeout=20), "write_side and read_side processes not seen"
    return set(node.children_seen)


def test_eof_drain_answers_everything_and_leaves_no_process(node):
    """Requests written then stdin closed at once: all answered, exit 0, no child left."""
    node.send({"type": "init", "msg_id": 1})
    assert_exact(node.read_line(), init_ok(1))
    kids = wait_for_children(node)
    batch = []
    for i in range(100):
        batch.append(envelope.create(f"e-{i}", f"E{i}", msg_id=2 * i + 2))
        batch.append(envelope.get_user(f"e-{i}", msg_id=2 * i + 3))
    node.send(*batch)
    node.close_stdin()
    out = node.read_all(timeout=30)
    assert node.wait(timeout=30) == 0
    assert len(out) == 200
    for i in range(100):
        assert_exact(out[2 * i], {"type": "command_result", "in_reply_to": 2 * i + 2, "success": True,
                                  "events": [{"eventType": "UserCreated", "aggregateId": f"e-{i}"}]})
        assert_exact(out[2 * i + 1], result({"id": f"e-{i}", "name": f"E{i}"}, in_reply_to=2 * i + 3))
    # "exit 0 once every child process has exited": nothing may be left at exit.
    assert [pid for pid in kids if alive(pid)] == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_idle_exits_0_with_no_process_left(node, signum):
    node.send(bus.get_user("user-123", msg_id=1))
    assert_exact(node.read_line(), result({"id": "user-123", "name": "John Doe"}, in_reply_to=1))
    kids = wait_for_children(node)
    node.signal(signum)
    assert node.wait(timeout=30) == 0
    assert node.read_all(timeout=10) == []
    assert [pid for pid in kids if alive(pid)] == []


def test_sigterm_right_after_a_burst(node_factory, tmp_path):
    """SIGTERM right after a burst: every line the node read is answered, in order, exit 0,
    no child left, and the store holds exactly the answered commands."""
    data_dir = str(tmp_path / "store")
    node = node_factory("--no-sample-data", "--data-dir", data_dir)
    node.send({"type": "init", "msg_id": 0})
    assert_exact(node.read_line(), init_ok(0))
    kids = wait_for_children(node)
    burst = [encode(bus.create(f"burst {i}", f"b{i}@example.com", msg_id=i)) + b"\n" for i in range(1, 2001)]
    node.send_raw(b"".join(burst))
    node.signal(signal.SIGTERM)
    # When send_raw returns, all but at most a pipe's worth of bytes has left the pipe, so the
    # node has read at least the lines that end before that point ("read" = taken off stdin).
    unread_max = fcntl.fcntl(node.proc.stdin.fileno(), fcntl.F_GETPIPE_SZ)
    ends = itertools.accumulate(len(line) for line in burst)
    surely_read = sum(1 for end in ends if end <= sum(map(len, burst)) - unread_max)
    assert node.wait(timeout=30) == 0
    out = node.read_all(timeout=10)
    assert [pid for pid in kids if alive(pid)] == []

    assert len(out) >= surely_read
    for i, line in enumerate(out, start=1):
        user_id = json.loads(line)["events"][0]["payload"]["id"]
        assert_exact(line, ok(bus.user_created(user_id, f"burst {i}"), in_reply_to=i))

    again = node_factory("--no-sample-data", "--data-dir", data_dir)
    names = []
    for page in (1, 2, 3):
        reply = again.request({"type": "ListUsers", "msg_id": page, "params": {"page": page, "limit": 1000}})
        names += [user["name"] for user in reply["data"]]
    assert names == [f"burst {i}" for i in range(1, len(out) + 1)]


def test_stdin_closed_mid_line_is_still_answered(node):
    """The last line without a trailing newline is a request too."""
    node.send({"type": "init", "msg_id": 1})
    node.send_raw(b'{"type": "GetUser", "msg_id": 2, "params": {"user_id": "user-123"}}')
    node.close_stdin()
    out = node.read_all(timeout=30)
    assert out == [json.dumps(init_ok(1)),
                   json.dumps(result({"id": "user-123", "name": "John Doe"}, in_reply_to=2))]
    assert node.wait(timeout=30) == 0
