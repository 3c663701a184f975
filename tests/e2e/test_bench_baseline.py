"""Tests of bench/baseline.py, the benchmark's plain single-process baseline.

1. The public conformance cases (../shared/conformance) pass against it.
2. Differential: the same request lines go to the real node (run_node.py) and to the
   baseline, and the reply lines must be equal as text once generated values are
   normalised (random UUIDs -> <id1>, <id2>... in order of first appearance; times
   written during the test -> <now>). Bus-dialect ids are chosen by the node, so the
   requests name them as <idN>, filled in from that process's own earlier replies.

Four node bugs this test found (deep JSON nesting, years before 1000, timestamps out
of range in UTC, an age past 64 bits) are kept as cases of their own.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from typing import Any

import pytest

from tests.support import envelope
from tests.support.dialogue import maelstrom
from tests.support.normalise import PLACEHOLDER, Normaliser, normalised
from tests.support.nodeproc import ROOT, RUN_NODE, Node, run_lines

BASELINE = os.path.join(ROOT, "bench", "baseline.py")
CONFORMANCE = os.path.join(os.path.dirname(ROOT), "shared", "conformance", "run.py")
PROGRAMS = {"node": RUN_NODE, "baseline": BASELINE}  # either implementation, by name


# ---- running either implementation ----------------------------------------------------------

def converse(which: str, templates: list[str], *args: str) -> list[str]:
    """Send the lines one at a time (blank ones get no reply); the normalised replies."""
    normalise = Normaliser()
    node = Node(*args, program=PROGRAMS[which])
    replies = []
    try:
        for template in templates:
            node.send(normalise.fill(template))
            if template.strip():
                replies.append(normalise(node.read_line(timeout=20)))
        node.close_stdin()
        assert node.read_all(timeout=20) == []
        assert node.wait(timeout=20) == 0
    finally:
        node.stop()
    return replies


def pipelined(which: str, lines: list[str], *args: str) -> list[str]:
    """Every line at once, then end of input: the normalised replies."""
    out, status, err = run_lines(lines, *args, program=PROGRAMS[which])
    assert status == 0, err[-2000:]
    return normalised(out)


def assert_same(node_replies: list[str], baseline_replies: list[str],
                requests: list[str]) -> None:
    asked = [r for r in requests if r.strip()]
    for i, (want, got) in enumerate(zip(node_replies, baseline_replies)):
        assert got == want, f"request {i}: {asked[i]}\n node:     {want}\n baseline: {got}"
    assert len(baseline_replies) == len(node_replies)


# ---- the request lines ----------------------------------------------------------------------

def line(body: dict, src: str | None = None, dest: str | None = None) -> str:
    """A request line: the bare body, or a Maelstrom envelope when src is given."""
    return json.dumps(body if src is None else maelstrom(body, src, dest))


BUS_COMMANDS = ("CreateUser", "RenameUser", "ChangeEmail", "DeactivateUser")


def bus_line(msg_id: int, type_: str, args: Any = None, **top: Any) -> str:
    """A bus-dialect line: `args` is the command's payload or the query's params."""
    is_command = type_ in BUS_COMMANDS
    body = {"type": type_, "msg_id": msg_id}
    if args is not None:
        body["payload" if is_command else "params"] = args
    body.update(top)
    return line(body, "c1", "commandbus" if is_command else "querybus")


def command_line(msg_id: int, type_: str, payload: Any, **extra: Any) -> str:
    return line(envelope.command(type_, payload, msg_id=msg_id, **extra), "c2", "cqrs")


def query_line(msg_id: int, type_: str, params: dict) -> str:
    return line(envelope.query(type_, msg_id=msg_id, **params))


def at_time_line(msg_id: int, user_id: str, timestamp: Any) -> str:
    return line(envelope.at_time(user_id, timestamp, msg_id=msg_id))


REQUESTS = [
    line({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]}, "c0", "n1"),
    # -- bus dialect: the `directory` context --
    bus_line(2, "CreateUser", {"name": "Alice", "email": "alice@example.com", "age": 30}),
    bus_line(3, "CreateUser", {"name": "Alice B", "email": "ALICE@Example.com"}),
    bus_line(4, "CreateUser", {"name": " ", "email": "bad", "age": -1}),
    bus_line(5, "CreateUser", {"name": 7, "age": 17}),
    bus_line(6, "CreateUser", "not an object"),
    bus_line(7, "CreateUser", {"name": "Bob", "email": "bob@example.com", "age": 30.0},
        command_id="c-bob"),
    bus_line(8, "CreateUser", {"name": "Bobby", "email": "bobby@example.com"}, command_id="c-bob"),
    bus_line(9, "RenameUser", {"id": "<id1>", "name": "Alice Smith"}, expected_version=1),
    bus_line(10, "RenameUser", {"id": "<id1>", "name": "Alice Jones"}, expected_version=1),
    bus_line(11, "RenameUser", {"id": "nope", "name": "X"}),
    bus_line(12, "RenameUser", {}),
    bus_line(13, "ChangeEmail", {"id": "<id1>", "email": "BOB@example.com"}),
    bus_line(14, "ChangeEmail", {"id": "<id1>", "email": "alice@example.com"}),
    bus_line(15, "ChangeEmail", {"id": "<id1>", "email": "alice2@example.com"}, expected_version=3),
    bus_line(16, "FindUserByEmail", {"email": "alice@example.com"}),
    bus_line(17, "FindUserByEmail", {"email": "ALICE2@example.com"}),
    bus_line(18, "CreateUser", {"name": "Carol", "email": "alice@example.com", "age": 18}),
    bus_line(19, "DeactivateUser", {"id": "<id2>"}),
    bus_line(20, "DeactivateUser", {"id": "<id2>"}),
    bus_line(21, "GetUser", {"user_id": "<id2>"}),
    bus_line(22, "CreateUser", {"name": "Dan", "email": "Bob@Example.com"}),
    bus_line(23, "FindUserByEmail", {"email": "bob@example.com"}),
    bus_line(24, "ListUsers", {}),
    bus_line(25, "ListUsers", {"page": 2, "limit": 1}),
    bus_line(26, "ListUsers", {"page": 0}),
    bus_line(27, "ListUsers", {"limit": 1001}),
    bus_line(28, "ListUsers", {"limit": True}),
    bus_line(29, "GetUser", {}),
    bus_line(30, "GetUser", {"user_id": "user-123"}),
    bus_line(31, "FindUserByEmail", {"email": 5}),
    bus_line(32, "CreateUser", {"name": "Eve", "email": "eve@example.com"}, expected_version="1"),
    bus_line(33, "CreateUser", {"name": "Eve", "email": "eve@example.com"}, command_id=""),
    bus_line(34, "RenameUser", {"id": "missing", "name": "Y"}, command_id="c-fail"),
    bus_line(35, "RenameUser", {"id": "<id1>", "name": "Y"}, command_id="c-fail"),
    bus_line(36, "RenameUser", {"id": "<id1>", "name": "Y"}, expected_version=-1),
    bus_line(37, "DeactivateUser", {"id": "<id3>"}, expected_version=1),
    bus_line(38, "ListUsers", {"limit": 1000}),
    bus_line(39, "GetUser", "not an object"),
    bus_line(40, "CreateUser", {"name": "Fay", "email": "fay@example.com", "age": 2.5}),
    # -- envelope dialect: the `accounts` context --
    command_line(41, "CreateUser", {"id": "acc-1", "name": "Ann"}),
    command_line(42, "CreateUser", {"id": "acc-1", "name": "Ann"}),
    command_line(43, "CreateUser", {"id": "acc-1", "name": "Anne"}),
    command_line(44, "CreateUser", {}),
    command_line(45, "RenameUser", {"id": "acc-1", "name": "Annie"}, expectedVersion=1),
    command_line(46, "RenameUser", {"id": "acc-1", "name": "Anna"}, expectedVersion=1),
    command_line(47, "RenameUser", {"id": "ghost", "name": "G"}),
    command_line(48, "RenameUser", {"id": "ghost", "name": "G"}, expectedVersion=3),
    command_line(49, "CreateUser", {"id": "acc-2", "name": "Ben"}, expectedVersion=0),
    command_line(50, "CreateUser", {"id": "acc-1", "name": "Ann"}, expectedVersion=0),
    command_line(51, "DeleteUser", {"id": "acc-2"}, commandId="del-2"),
    command_line(52, "DeleteUser", {"id": "acc-2"}, commandId="del-2"),
    command_line(53, "DeleteUser", {"id": "acc-2"}),
    command_line(54, "CreateUser", {"id": "acc-2", "name": "Ben"}),
    command_line(55, "CreateUser", {"id": "acc-2", "name": "Benny"}),
    command_line(56, "RenameUser", {"id": "acc-2", "name": "B"}),
    command_line(57, "RenameUser", {"id": "", "name": ""}),
    command_line(92, "CreateUser", {"id": "acc-1", "name": "Annie"}),  # renamed since: not a repeat
    command_line(93, "CreateUser", {"id": "acc-1", "name": "Ann"}),  # the created name: a repeat
    query_line(58, "GetUser", {"userId": "acc-2"}),
    query_line(59, "GetUser", {"userId": "acc-1"}),
    query_line(60, "GetUserHistory", {"userId": "acc-1"}),
    query_line(61, "GetUserHistory", {"userId": "user-123"}),
    query_line(62, "GetUserHistory", {"userId": "nobody"}),
    at_time_line(63, "user-123", "2024-01-05T00:00:00Z"),
    at_time_line(64, "user-123", "2024-01-15"),
    at_time_line(65, "user-123", "2024-01-10T01:00:00+02:00"),
    at_time_line(66, "user-123", "2023-12-31T23:59:59"),
    at_time_line(94, "user-123", "2024-01-10T00:00:00Z"),  # at the instant of the rename: included
    at_time_line(95, "user-123", "2024-01-09T23:59:59.999999Z"),
    at_time_line(67, "user-123", "not a time"),
    at_time_line(68, "acc-1", "2999-01-01T00:00:00Z"),
    at_time_line(69, "acc-1", "2000-01-01T00:00:00Z"),
    at_time_line(70, "user-123", 20240105),
    query_line(71, "GetUserAtTime", {"timestamp": "2024-01-05T00:00:00Z"}),
    query_line(72, "ListUsers", {"limit": 5}),
    query_line(73, "ListUsers", {"page": 2, "limit": 1}),
    query_line(74, "Frobnicate", {}),
    command_line(75, "Frobnicate", {}),
    line({"type": "command", "msg_id": 76, "command": "CreateUser"}),
    line({"type": "query", "msg_id": 77, "query": {"params": {}}}),
    command_line(78, "CreateUser", {"id": "acc-3", "name": "C"}, commandId="x" * 129),
    command_line(79, "CreateUser", {"id": "acc-3", "name": "C"}, expectedVersion=True),
    command_line(80, "CreateUser", {"id": "acc-3", "name": "C", "n": 1 << 70}),
    # -- transport: malformed lines, unknown types, odd msg_ids --
    line({"type": "Frobnicate", "msg_id": 81}),
    "{not json",
    "[1, 2]",
    json.dumps({"src": "a", "dest": "b", "body": "x"}),
    json.dumps({"msg_id": 85}),
    json.dumps({"type": 7, "msg_id": 86}),
    "   ",
    line({"type": "GetUser", "msg_id": "eighty-eight", "params": {"user_id": "user-123"}},
         "c9", "n9"),
    line({"type": "GetUser", "params": {"user_id": "<id1>"}}),
    line({"type": "CreateUser", "msg_id": 90, "payload": {"name": "Zoë ☃", "email": "z@ex.io"}}),
    bus_line(91, "ListUsers", {"page": 1, "limit": 2}),
]


CONFIGS = {
    "no sample data": ("--no-sample-data",),
    "sample data": (),
    "envelope": ("--envelope",),
}


# ---- 1. the public conformance cases ---------------------------------------------------------

@pytest.mark.skipif(not os.path.exists(CONFORMANCE),
                    reason="../shared/conformance is not beside this checkout")
@pytest.mark.parametrize("command", [f"{sys.executable} -m bench.baseline",
                                     f"{sys.executable} bench/baseline.py"])
def test_conformance_cases_pass(command):
    run = subprocess.run([sys.executable, CONFORMANCE, "--node", command, "--cwd", ROOT],
                         cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = re.search(r"(\d+) passed, (\d+) failed", run.stdout)
    assert summary and int(summary.group(1)) > 0 and summary.group(2) == "0", run.stdout


# ---- 2. differential: the real node and the baseline, line by line --------------------------

@pytest.mark.parametrize("args", CONFIGS.values(), ids=CONFIGS.keys())
def test_same_replies_as_the_node_one_at_a_time(args, tmp_path):
    want = converse("node", REQUESTS, *args, "--data-dir", str(tmp_path / "node"))
    got = converse("baseline", REQUESTS, *args, "--data-dir", str(tmp_path / "baseline"))
    assert len(want) == sum(1 for r in REQUESTS if r.strip())
    assert_same(want, got, REQUESTS)


@pytest.mark.parametrize("args", CONFIGS.values(), ids=CONFIGS.keys())
def test_same_replies_as_the_node_pipelined(args, tmp_path):
    """Every line written at once (those that need no generated id): the same replies."""
    requests = [r for r in REQUESTS if not PLACEHOLDER.search(r)]
    want = pipelined("node", requests, *args, "--data-dir", str(tmp_path / "node"))
    got = pipelined("baseline", requests, *args, "--data-dir", str(tmp_path / "baseline"))
    assert_same(want, got, requests)


def oversized(size: int, msg_id: int | None, where: str = "head") -> str:
    """A CreateUser line of exactly `size` bytes, its msg_id (if any) at one end."""
    def build(name: str) -> str:
        body: dict[str, Any] = {"type": "CreateUser", "payload": {"name": name}}
        if msg_id is not None:
            body = {"msg_id": msg_id, **body} if where == "head" else {**body, "msg_id": msg_id}
        return json.dumps(body)

    text = build("x" * (size - len(build(""))))
    assert len(text) == size
    return text


@pytest.mark.parametrize("args, lines", [
    (("--max-line", "300"), [
        oversized(400, 1), oversized(400, 2, "tail"), oversized(400, None),
        oversized(300, 4),  # exactly the limit: an ordinary request
        oversized(301, 5),
        bus_line(6, "GetUser", {"user_id": "user-123"}),
    ]),
    ((), [oversized((1 << 20) + 10, 7), oversized(1 << 20, 8),
          oversized((1 << 20) + 200_000, 9, "tail"), bus_line(10, "GetUser", {"user_id": "user-123"})]),
], ids=["max-line 300", "default 1 MiB"])
def test_same_replies_to_oversized_lines(args, lines, tmp_path):
    want = pipelined("node", lines, *args)
    got = pipelined("baseline", lines, *args)
    assert len(want) == len(lines)
    assert_same(want, got, lines)


# ---- cases the node once got wrong (found by this differential test) -------------------------

NESTED = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("lines", [
    pytest.param([NESTED, line({"type": "init", "msg_id": 2})], id="deeply nested JSON"),
    pytest.param([at_time_line(1, "user-123", "0999-01-01T00:00:00")], id="year before 1000"),
    pytest.param([at_time_line(1, "user-123", "0001-01-01T00:00:00+01:00"),
                  at_time_line(2, "user-123", "9999-12-31T23:59:59-01:00")],
                 id="timestamp out of range in UTC"),
    # 1e20 is a whole number, but int(1e20) does not fit the 64-bit integers of the
    # internal wire: error 12 for that command alone, as for a 2**64 literal.
    pytest.param([bus_line(1, "CreateUser", {"name": "Al", "email": "al@example.com", "age": 1e20}),
                  bus_line(2, "GetUser", {"user_id": "user-123"})],
                 id="whole float age beyond 64 bits"),
])
def test_formerly_disputed_cases(lines, tmp_path):
    want = pipelined("baseline", lines)
    out, status, err = run_lines(lines)
    got = [Normaliser()(line) for line in out]
    assert status == 0, err[-2000:]
    assert got == want


def test_baseline_answers_the_disputed_cases_by_the_protocol():
    out = pipelined("baseline", [
        NESTED,
        at_time_line(2, "user-123", "0999-01-01T00:00:00"),
        at_time_line(3, "user-123", "0001-01-01T00:00:00+01:00"),
    ])
    assert out == [
        '{"type": "error", "in_reply_to": null, "code": 12, "text": "malformed request: '
        'invalid JSON"}',
        '{"type": "query_result", "in_reply_to": 2, "data": null}',
        '{"type": "error", "in_reply_to": 3, "code": 12, "text": "malformed request: '
        'param timestamp must be an ISO-8601 timestamp"}',
    ]


# ---- the baseline as a program ----------------------------------------------------------------

def test_accepts_run_node_flags_and_environment(tmp_path):
    args = ("--data-dir", str(tmp_path / "data"), "--sync", "normal", "--timeout", "2",
            "--read-replicas", "3", "--runtime-dir", str(tmp_path / "rt"),
            "--events-endpoint", "ipc:///nowhere")
    out, status, err = run_lines([bus_line(1, "GetUser", {"user_id": "user-123"})], *args,
                                 program=BASELINE)
    assert status == 0, err
    assert out == ['{"type": "query_result", "in_reply_to": 1, '
                   '"data": {"id": "user-123", "name": "John Doe"}}']
    requests = (b'{"src": "a", "dest": "b", "body": {"type": "init", "msg_id": 3}}\n'
                b'{"type": "ListUsers", "msg_id": 4}\n')
    proc = subprocess.run([sys.executable, "-m", "bench.baseline"], cwd=ROOT, timeout=30,
                          input=requests, capture_output=True,
                          env={**os.environ, "CQRS_ENVELOPE": "1", "CQRS_NO_SAMPLE_DATA": "1"})
    assert proc.stdout.decode().splitlines() == [
        '{"src": "b", "dest": "a", "body": {"type": "init_ok", "in_reply_to": 3}}',
        '{"src": null, "dest": null, "body": {"type": "query_result", "in_reply_to": 4, '
        '"data": []}}',
    ]
    assert not (tmp_path / "data").exists()  # nothing is durable


def test_each_reply_is_flushed_before_the_next_request(tmp_path):
    node = Node("--data-dir", str(tmp_path), program=BASELINE)
    try:
        assert node.request({"type": "init", "msg_id": 1}) == {"type": "init_ok",
                                                                "in_reply_to": 1}
        stats = node.request({"type": "stats", "msg_id": 2})
        assert stats["type"] == "stats_result" and stats["in_reply_to"] == 2
        assert stats["data"]["router"]["head"] == 4  # the four sample events
    finally:
        node.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_it_cleanly(signum):
    node = Node(program=BASELINE)
    try:
        assert node.request({"type": "init", "msg_id": 1})["type"] == "init_ok"
        node.signal(signum)
        assert node.wait(timeout=20) == 0
        assert node.read_all(timeout=20) == []
    finally:
        node.stop()


def test_many_pipelined_commands_get_one_reply_each():
    lines = [bus_line(i, "CreateUser", {"name": f"User {i}", "email": f"u{i}@example.com"})
             for i in range(1, 2001)]
    lines += [bus_line(2001, "ListUsers", {"page": 200, "limit": 10})]
    out, status, err = run_lines(lines, "--no-sample-data", program=BASELINE)
    assert status == 0, err
    assert len(out) == 2001
    assert [json.loads(o)["in_reply_to"] for o in out] == list(range(1, 2002))
    assert all(json.loads(o)["success"] for o in out[:-1])
    assert [u["name"] for u in json.loads(out[-1])["data"]] == [
        f"User {i}" for i in range(2001 - 10, 2001)]
