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
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support import nodeproc
from tests.support.nodeproc import ROOT, Node, run_lines

BASELINE = os.path.join(ROOT, "bench", "baseline.py")
CONFORMANCE = os.path.join(os.path.dirname(ROOT), "shared", "conformance", "run.py")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CANONICAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
PLACEHOLDER = re.compile(r"<id(\d+)>")
TEST_START = (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- starting either implementation -------------------------------------------------------

def start(which: str, *args: str) -> Node:
    """A nodeproc.Node running the real node ("node") or the baseline ("baseline")."""
    if which == "node":
        return Node(*args)
    saved = nodeproc.RUN_NODE
    nodeproc.RUN_NODE = BASELINE  # Node starts [python, RUN_NODE, *args]
    try:
        return Node(*args)
    finally:
        nodeproc.RUN_NODE = saved


def run_all(which: str, lines: list[Any], *args: str) -> tuple[list[str], int, str]:
    """nodeproc.run_lines on either implementation: every line at once, then end of input."""
    if which == "node":
        return run_lines(lines, *args)
    saved = nodeproc.RUN_NODE
    nodeproc.RUN_NODE = BASELINE
    try:
        return run_lines(lines, *args)
    finally:
        nodeproc.RUN_NODE = saved


# ---- normalising generated values ---------------------------------------------------------

class Normaliser:
    """Replaces each distinct UUID by <idN> (in order of first appearance) and every
    canonical time written since the test run began by <now>."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def _id(self, match: re.Match) -> str:
        value = match.group(0)
        if value not in self.ids:
            self.ids.append(value)
        return f"<id{self.ids.index(value) + 1}>"

    def __call__(self, line: str) -> str:
        line = UUID.sub(self._id, line)
        return CANONICAL_TIME.sub(lambda m: "<now>" if m.group(0) >= TEST_START else m.group(0),
                                  line)

    def fill(self, template: str) -> str:
        """A request template with <idN> replaced by this process's N-th id."""
        return PLACEHOLDER.sub(lambda m: self.ids[int(m.group(1)) - 1], template)


def converse(which: str, templates: list[str], *args: str) -> list[str]:
    """Send the lines one at a time (blank ones get no reply); the normalised replies."""
    normalise = Normaliser()
    node = start(which, *args)
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
    out, status, err = run_all(which, lines, *args)
    assert status == 0, err[-2000:]
    normalise = Normaliser()
    return [normalise(line) for line in out]


def assert_same(node_replies: list[str], baseline_replies: list[str],
                requests: list[str]) -> None:
    asked = [r for r in requests if r.strip()]
    for i, (want, got) in enumerate(zip(node_replies, baseline_replies)):
        assert got == want, f"request {i}: {asked[i]}\n node:     {want}\n baseline: {got}"
    assert len(baseline_replies) == len(node_replies)


# ---- the request lines ----------------------------------------------------------------------

def line(body: dict, src: str | None = None, dest: str | None = None) -> str:
    """A request line: the bare body, or a Maelstrom envelope when src is given."""
    if src is None:
        return json.dumps(body)
    return json.dumps({"src": src, "dest": dest, "body": body})


BUS_COMMANDS = ("CreateUser", "RenameUser", "ChangeEmail", "DeactivateUser")


def bus(msg_id: int, type_: str, args: Any = None, **top: Any) -> str:
    """A bus-dialect line: `args` is the command's payload or the query's params."""
    is_command = type_ in BUS_COMMANDS
    body = {"type": type_, "msg_id": msg_id}
    if args is not None:
        body["payload" if is_command else "params"] = args
    body.update(top)
    return line(body, "c1", "commandbus" if is_command else "querybus")


def command(msg_id: int, type_: str, payload: Any, **extra: Any) -> str:
    return line({"type": "command", "msg_id": msg_id,
                 "command": {"type": type_, "payload": payload, **extra}}, "c2", "cqrs")


def query(msg_id: int, type_: str, params: Any) -> str:
    return line({"type": "query", "msg_id": msg_id, "query": {"type": type_, "params": params}})


def at_time(msg_id: int, user_id: str, timestamp: Any) -> str:
    return query(msg_id, "GetUserAtTime", {"userId": user_id, "timestamp": timestamp})


REQUESTS = [
    line({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]}, "c0", "n1"),
    # -- bus dialect: the `directory` context --
    bus(2, "CreateUser", {"name": "Alice", "email": "alice@example.com", "age": 30}),
    bus(3, "CreateUser", {"name": "Alice B", "email": "ALICE@Example.com"}),
    bus(4, "CreateUser", {"name": " ", "email": "bad", "age": -1}),
    bus(5, "CreateUser", {"name": 7, "age": 17}),
    bus(6, "CreateUser", "not an object"),
    bus(7, "CreateUser", {"name": "Bob", "email": "bob@example.com", "age": 30.0},
        command_id="c-bob"),
    bus(8, "CreateUser", {"name": "Bobby", "email": "bobby@example.com"}, command_id="c-bob"),
    bus(9, "RenameUser", {"id": "<id1>", "name": "Alice Smith"}, expected_version=1),
    bus(10, "RenameUser", {"id": "<id1>", "name": "Alice Jones"}, expected_version=1),
    bus(11, "RenameUser", {"id": "nope", "name": "X"}),
    bus(12, "RenameUser", {}),
    bus(13, "ChangeEmail", {"id": "<id1>", "email": "BOB@example.com"}),
    bus(14, "ChangeEmail", {"id": "<id1>", "email": "alice@example.com"}),
    bus(15, "ChangeEmail", {"id": "<id1>", "email": "alice2@example.com"}, expected_version=3),
    bus(16, "FindUserByEmail", {"email": "alice@example.com"}),
    bus(17, "FindUserByEmail", {"email": "ALICE2@example.com"}),
    bus(18, "CreateUser", {"name": "Carol", "email": "alice@example.com", "age": 18}),
    bus(19, "DeactivateUser", {"id": "<id2>"}),
    bus(20, "DeactivateUser", {"id": "<id2>"}),
    bus(21, "GetUser", {"user_id": "<id2>"}),
    bus(22, "CreateUser", {"name": "Dan", "email": "Bob@Example.com"}),
    bus(23, "FindUserByEmail", {"email": "bob@example.com"}),
    bus(24, "ListUsers", {}),
    bus(25, "ListUsers", {"page": 2, "limit": 1}),
    bus(26, "ListUsers", {"page": 0}),
    bus(27, "ListUsers", {"limit": 1001}),
    bus(28, "ListUsers", {"limit": True}),
    bus(29, "GetUser", {}),
    bus(30, "GetUser", {"user_id": "user-123"}),
    bus(31, "FindUserByEmail", {"email": 5}),
    bus(32, "CreateUser", {"name": "Eve", "email": "eve@example.com"}, expected_version="1"),
    bus(33, "CreateUser", {"name": "Eve", "email": "eve@example.com"}, command_id=""),
    bus(34, "RenameUser", {"id": "missing", "name": "Y"}, command_id="c-fail"),
    bus(35, "RenameUser", {"id": "<id1>", "name": "Y"}, command_id="c-fail"),
    bus(36, "RenameUser", {"id": "<id1>", "name": "Y"}, expected_version=-1),
    bus(37, "DeactivateUser", {"id": "<id3>"}, expected_version=1),
    bus(38, "ListUsers", {"limit": 1000}),
    bus(39, "GetUser", "not an object"),
    bus(40, "CreateUser", {"name": "Fay", "email": "fay@example.com", "age": 2.5}),
    # -- envelope dialect: the `accounts` context --
    command(41, "CreateUser", {"id": "acc-1", "name": "Ann"}),
    command(42, "CreateUser", {"id": "acc-1", "name": "Ann"}),
    command(43, "CreateUser", {"id": "acc-1", "name": "Anne"}),
    command(44, "CreateUser", {}),
    command(45, "RenameUser", {"id": "acc-1", "name": "Annie"}, expectedVersion=1),
    command(46, "RenameUser", {"id": "acc-1", "name": "Anna"}, expectedVersion=1),
    command(47, "RenameUser", {"id": "ghost", "name": "G"}),
    command(48, "RenameUser", {"id": "ghost", "name": "G"}, expectedVersion=3),
    command(49, "CreateUser", {"id": "acc-2", "name": "Ben"}, expectedVersion=0),
    command(50, "CreateUser", {"id": "acc-1", "name": "Ann"}, expectedVersion=0),
    command(51, "DeleteUser", {"id": "acc-2"}, commandId="del-2"),
    command(52, "DeleteUser", {"id": "acc-2"}, commandId="del-2"),
    command(53, "DeleteUser", {"id": "acc-2"}),
    command(54, "CreateUser", {"id": "acc-2", "name": "Ben"}),
    command(55, "CreateUser", {"id": "acc-2", "name": "Benny"}),
    command(56, "RenameUser", {"id": "acc-2", "name": "B"}),
    command(57, "RenameUser", {"id": "", "name": ""}),
    command(92, "CreateUser", {"id": "acc-1", "name": "Annie"}),  # renamed since: not a repeat
    command(93, "CreateUser", {"id": "acc-1", "name": "Ann"}),  # the created name: a repeat
    query(58, "GetUser", {"userId": "acc-2"}),
    query(59, "GetUser", {"userId": "acc-1"}),
    query(60, "GetUserHistory", {"userId": "acc-1"}),
    query(61, "GetUserHistory", {"userId": "user-123"}),
    query(62, "GetUserHistory", {"userId": "nobody"}),
    at_time(63, "user-123", "2024-01-05T00:00:00Z"),
    at_time(64, "user-123", "2024-01-15"),
    at_time(65, "user-123", "2024-01-10T01:00:00+02:00"),
    at_time(66, "user-123", "2023-12-31T23:59:59"),
    at_time(94, "user-123", "2024-01-10T00:00:00Z"),  # at the instant of the rename: included
    at_time(95, "user-123", "2024-01-09T23:59:59.999999Z"),
    at_time(67, "user-123", "not a time"),
    at_time(68, "acc-1", "2999-01-01T00:00:00Z"),
    at_time(69, "acc-1", "2000-01-01T00:00:00Z"),
    at_time(70, "user-123", 20240105),
    query(71, "GetUserAtTime", {"timestamp": "2024-01-05T00:00:00Z"}),
    query(72, "ListUsers", {"limit": 5}),
    query(73, "ListUsers", {"page": 2, "limit": 1}),
    query(74, "Frobnicate", {}),
    command(75, "Frobnicate", {}),
    line({"type": "command", "msg_id": 76, "command": "CreateUser"}),
    line({"type": "query", "msg_id": 77, "query": {"params": {}}}),
    command(78, "CreateUser", {"id": "acc-3", "name": "C"}, commandId="x" * 129),
    command(79, "CreateUser", {"id": "acc-3", "name": "C"}, expectedVersion=True),
    command(80, "CreateUser", {"id": "acc-3", "name": "C", "n": 1 << 70}),
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
    bus(91, "ListUsers", {"page": 1, "limit": 2}),
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


def test_normalising_keeps_differences_visible():
    """The normaliser maps ids by order of appearance, so swapped ids still differ."""
    a, b = "11111111-2222-4333-8444-555555555555", "66666666-7777-4888-9999-aaaaaaaaaaaa"
    first, second = Normaliser(), Normaliser()
    assert [first(a), first(b), first(a)] == ["<id1>", "<id2>", "<id1>"]
    assert [second(b), second(a)] == ["<id1>", "<id2>"]
    assert Normaliser()(f"{a} {b}") != Normaliser()(f"{a} {a}")
    assert Normaliser()("2024-01-10T00:00:00.000000Z") == "2024-01-10T00:00:00.000000Z"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert Normaliser()(now) == "<now>"


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
        bus(6, "GetUser", {"user_id": "user-123"}),
    ]),
    ((), [oversized((1 << 20) + 10, 7), oversized(1 << 20, 8),
          oversized((1 << 20) + 200_000, 9, "tail"), bus(10, "GetUser", {"user_id": "user-123"})]),
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
    pytest.param([at_time(1, "user-123", "0999-01-01T00:00:00")], id="year before 1000"),
    pytest.param([at_time(1, "user-123", "0001-01-01T00:00:00+01:00"),
                  at_time(2, "user-123", "9999-12-31T23:59:59-01:00")],
                 id="timestamp out of range in UTC"),
    # 1e20 is a whole number, but int(1e20) does not fit the 64-bit integers of the
    # internal wire: error 12 for that command alone, as for a 2**64 literal.
    pytest.param([bus(1, "CreateUser", {"name": "Al", "email": "al@example.com", "age": 1e20}),
                  bus(2, "GetUser", {"user_id": "user-123"})],
                 id="whole float age beyond 64 bits"),
])
def test_formerly_disputed_cases(lines, tmp_path):
    want = pipelined("baseline", lines)
    out, status, err = run_all("node", lines)
    got = [Normaliser()(line) for line in out]
    assert status == 0, err[-2000:]
    assert got == want


def test_baseline_answers_the_disputed_cases_by_the_protocol():
    out = pipelined("baseline", [
        NESTED,
        at_time(2, "user-123", "0999-01-01T00:00:00"),
        at_time(3, "user-123", "0001-01-01T00:00:00+01:00"),
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
    out, status, err = run_all("baseline", [bus(1, "GetUser", {"user_id": "user-123"})], *args)
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
    node = start("baseline", "--data-dir", str(tmp_path))
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
    node = start("baseline")
    try:
        assert node.request({"type": "init", "msg_id": 1})["type"] == "init_ok"
        node.signal(signum)
        assert node.wait(timeout=20) == 0
        assert node.read_all(timeout=20) == []
    finally:
        node.stop()


def test_many_pipelined_commands_get_one_reply_each():
    lines = [bus(i, "CreateUser", {"name": f"User {i}", "email": f"u{i}@example.com"})
             for i in range(1, 2001)]
    lines += [bus(2001, "ListUsers", {"page": 200, "limit": 10})]
    out, status, err = run_all("baseline", lines, "--no-sample-data")
    assert status == 0, err
    assert len(out) == 2001
    assert [json.loads(o)["in_reply_to"] for o in out] == list(range(1, 2002))
    assert all(json.loads(o)["success"] for o in out[:-1])
    assert [u["name"] for u in json.loads(out[-1])["data"]] == [
        f"User {i}" for i in range(2001 - 10, 2001)]
