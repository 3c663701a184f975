"""A newcomer's first hour (issue 13), end to end: `make run` keeps stdout for replies, the
examples the project shows are what a node answers, the conformance runner runs the samples
(also in a copy of the tree with nothing beside it, which stays clean), a request without its
arguments object is explained on stderr, the tools find the node or say why not, reach the
project's .venv from any python, and settings out of range or an unusable data folder are
refused the way the protocol page says."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import zmq

from common import config
from tests.e2e.test_curve import curve_node  # noqa: F401  (a fixture: a CURVE service node)
from tests.support.formats import UUID
from tests.support.nodeproc import ROOT, run_lines
from tests.support.ports import free_ports

TIMEOUT = 60.0  # generous: a busy 2-core machine
RUNNER = os.path.join(ROOT, "tests", "conformance", "run.py")
CASES = os.path.join(ROOT, "tests", "conformance", "cases.jsonl")
HINT = "a good request looks like"


def shell_env(**extra: str) -> dict[str, str]:
    """The environment of a shell a person types in: no make state inherited from a `make
    test` that runs this test (under it, make would announce directories on stdout), and
    no CQRS_ setting of the test run's own."""
    drop = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "CQRS_REEXEC")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def out_lines(data: bytes) -> list[str]:
    """Stdout as lines; every line must end with a newline (a half line is not a reply)."""
    text = data.decode("utf-8", "replace")
    assert text == "" or text.endswith("\n"), f"unterminated last line: {text[-200:]!r}"
    return text.split("\n")[:-1]


def requests() -> list[dict]:
    """A little of everything: both examples, a command of each dialect, init and stats."""
    return [{"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]},
            *(json.loads(request) for request, _reply in config.EXAMPLES),
            {"type": "CreateUser", "msg_id": 3, "payload": {"name": "A", "email": "a@example.com"}},
            {"type": "command", "msg_id": 4,
             "command": {"type": "CreateUser", "payload": {"id": "n-1", "name": "N"}}},
            {"type": "stats", "msg_id": 5}]


def assert_replies_only(stdout: bytes, sent: list[dict]) -> None:
    """Stdout holds one JSON reply per request, in order, and nothing else."""
    lines = out_lines(stdout)
    assert len(lines) == len(sent), lines
    for line, request in zip(lines, sent):
        assert json.loads(line)["in_reply_to"] == request["msg_id"], line


def encoded(bodies: list[dict]) -> bytes:
    return b"".join(json.dumps(b).encode() + b"\n" for b in bodies)


# -- item 1: stdout carries replies only -----------------------------------------------------

def test_make_run_writes_the_replies_and_nothing_else():
    sent = requests()
    done = subprocess.run(["make", "run"], cwd=ROOT, input=encoded(sent), capture_output=True,
                          timeout=TIMEOUT, env=shell_env())
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert_replies_only(done.stdout, sent)


def test_make_from_another_folder_as_the_readme_says(tmp_path):
    """`make -s -C DIR run`: make prints no directory lines, so stdout is still replies only."""
    sent = requests()
    done = subprocess.run(["make", "-s", "-C", ROOT, "run"], cwd=tmp_path, input=encoded(sent),
                          capture_output=True, timeout=TIMEOUT, env=shell_env())
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert_replies_only(done.stdout, sent)


# -- item 2: the examples the project shows are what a node answers ---------------------------

def test_help_ends_with_example_lines_a_node_really_answers_so():
    help_text = subprocess.run([sys.executable, os.path.join(ROOT, "run_node.py"), "--help"],
                               capture_output=True, timeout=TIMEOUT, cwd=ROOT)
    assert help_text.returncode == 0
    lines = out_lines(help_text.stdout)
    assert lines[-len(config.EXAMPLE_LINES):] == config.EXAMPLE_LINES
    shown = lines[-len(config.EXAMPLE_LINES):]
    asked, answers = [s.strip() for s in shown[0::2]], [s.strip()[3:] for s in shown[1::2]]
    replies, status, err = run_lines(asked)
    assert status == 0, err
    assert replies == answers
    readme = Path(ROOT, "README.md").read_text()
    assert "\n".join(shown) in readme


def doc_examples(path: str) -> list[tuple[str, str]]:
    """The (request line, reply line) pairs in the page's code blocks: a line starting with
    `{` followed by one starting with `-> `."""
    pairs, inside, previous = [], False, ""
    for line in Path(path).read_text().split("\n"):
        if line.startswith("```"):
            inside, previous = not inside, ""
            continue
        if inside and line.startswith("-> ") and previous.startswith("{"):
            pairs.append((previous, line[3:]))
        previous = line if inside else ""
    return pairs


def test_every_example_of_the_protocol_page_is_what_a_node_answers():
    """docs/protocol.md's request/reply pairs, in page order, on one fresh node: each reply
    line exactly, but for the random ids of users created (any UUID there)."""
    pairs = doc_examples(os.path.join(ROOT, "docs", "protocol.md"))
    assert len(pairs) >= 10, pairs
    replies, status, err = run_lines([request for request, _ in pairs])
    assert status == 0, err
    assert len(replies) == len(pairs)
    for (request, expected), got in zip(pairs, replies):
        pattern = UUID.pattern.join(re.escape(part) for part in UUID.split(expected))
        assert re.fullmatch(pattern, got), f"{request}\n got  {got}\n want {expected}"


# -- item 2: the conformance runner -----------------------------------------------------------

def run_runner(*args: str, cwd: str = ROOT) -> tuple[int, list[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, RUNNER, *args], cwd=cwd, capture_output=True,
                          timeout=TIMEOUT * 3)
    return done.returncode, out_lines(done.stdout), time.monotonic() - started


def test_the_runner_passes_the_sample_cases():
    with open(CASES) as f:
        count = sum(1 for line in f if line.strip())
    status, lines, _ = run_runner()
    assert lines[-1] == f"{count} passed, 0 failed", lines
    assert status == 0
    assert sum(line.startswith("ok    ") for line in lines) == count


def write_cases(path: Path, *cases: dict) -> str:
    path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    return str(path)


def test_the_runner_fails_a_wrong_reply(tmp_path):
    cases = write_cases(tmp_path / "cases.jsonl", {
        "name": "wrong name", "input": ['{"type": "GetUser", "msg_id": 1, "params": '
                                         '{"user_id": "user-123"}}'],
        "expect": ['{"type": "query_result", "in_reply_to": 1, "data": {"id": "user-123", '
                   '"name": "Jane .*"}}']})
    status, lines, _ = run_runner("--cases", cases)
    assert status == 1
    assert lines[0].startswith("FAIL  wrong name: reply 1:"), lines
    assert lines[-1] == "0 passed, 1 failed"


def test_the_runner_gives_a_silent_node_its_deadline_and_no_more(tmp_path):
    cases = write_cases(tmp_path / "cases.jsonl",
                        {"name": "silent", "input": ['{"type": "init", "msg_id": 1}'],
                         "expect": ['{"type": "init_ok", "in_reply_to": 1}']})
    silent = f"{sys.executable} -c 'import time; time.sleep(60)'"
    status, lines, took = run_runner("--cases", cases, "--node", silent, "--deadline", "1")
    assert status == 1
    assert "0 reply lines within 1 s" in lines[0], lines
    assert took < 15, f"the runner took {took:.1f} s for a 1 s deadline"


def test_the_runner_wants_exit_status_zero(tmp_path):
    cases = write_cases(tmp_path / "cases.jsonl",
                        {"name": "exit 3", "input": ['{"type": "init", "msg_id": 1}'],
                         "expect": ['{"type": "init_ok", "in_reply_to": 1}']})
    script = tmp_path / "node.py"
    script.write_text("import sys\nsys.stdin.read()\n"
                      "print('{\"type\": \"init_ok\", \"in_reply_to\": 1}')\nsys.exit(3)\n")
    status, lines, _ = run_runner("--cases", cases, "--node", f"{sys.executable} {script}")
    assert status == 1
    assert "exit status 3, want 0" in lines[0], lines


# -- items 2 and 8: a copy of the tree, nothing beside it -------------------------------------

def copy_of_the_tree(target: Path) -> None:
    """The files a clone would hold (tracked or not ignored, as they are now), mtimes kept."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True, timeout=TIMEOUT).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = Path(ROOT, name)
        if source.is_file():  # a file deleted in the working tree is not there to copy
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def git_status(folder: Path) -> list[str]:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=folder,
                          capture_output=True, check=True, timeout=TIMEOUT).stdout.decode().split("\n")


def test_a_copy_of_the_tree_sets_up_runs_the_samples_and_stays_clean(tmp_path):
    """In a copy with no ../shared beside it and no .venv yet: `make run` sets up and then
    writes replies only; `make conformance` passes on the project's own cases; afterwards
    git sees no new or changed file (bench/out, .data and .venv are ignored)."""
    tree = tmp_path / "cqrs-node"
    copy_of_the_tree(tree)
    assert not (tmp_path / "shared").exists()
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True, timeout=TIMEOUT)
    before = git_status(tree)

    sent = requests()
    done = subprocess.run(["make", "run"], cwd=tree, input=encoded(sent), capture_output=True,
                          timeout=TIMEOUT * 5, env=shell_env())  # first: makes .venv
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert_replies_only(done.stdout, sent)
    assert b"setting up .venv" in done.stderr

    done = subprocess.run(["make", "conformance"], cwd=tree, capture_output=True,
                          timeout=TIMEOUT * 3, env=shell_env())
    lines = out_lines(done.stdout)
    assert done.returncode == 0, (lines, done.stderr.decode()[-3000:])
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1]), lines

    assert git_status(tree) == before


# -- item 2: a request without its arguments object --------------------------------------------

def hint_times(stderr: str) -> list[datetime]:
    """When each hint line was logged (the log's own time stamp, to the millisecond)."""
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*" + re.escape(HINT), stderr,
                        re.M)
    return [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in stamps]


def test_a_flood_without_payload_gets_the_validation_errors_and_one_hint_a_second():
    flood = [{"type": "CreateUser", "msg_id": i} for i in range(1, 2001)]
    started = time.monotonic()
    replies, status, err = run_lines(flood, timeout=TIMEOUT)
    took = time.monotonic() - started
    assert status == 0, err
    assert replies == [json.dumps({"type": "command_result", "in_reply_to": i, "success": False,
                                   "errors": ["Name is required", "Email is required"]})
                       for i in range(1, 2001)]
    hints = [line for line in err.split("\n") if HINT in line]
    assert hints, err[-2000:]
    assert 'has no payload object; a good request looks like {"type": "CreateUser", ' \
           '"msg_id": 1, "payload": {...}}' in hints[0]
    assert len(hints) <= 1 + took, hints
    times = hint_times(err)
    assert len(times) == len(hints)
    assert all((b - a).total_seconds() >= 0.9 for a, b in zip(times, times[1:])), times


# -- item 3: the tap finds the catch-up endpoint on its own ------------------------------------

def tool(module: str, *args: str, stdin: bytes = b"", timeout: float = TIMEOUT,
         env: dict[str, str] | None = None) -> tuple[int, list[str], str, float]:
    """Run `python -m <module> args` to its end: (status, stdout lines, stderr, seconds)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, input=stdin,
                          capture_output=True, timeout=timeout, env=shell_env(**(env or {})))
    return (done.returncode, out_lines(done.stdout), done.stderr.decode("utf-8", "replace"),
            time.monotonic() - started)


SAMPLE_EVENTS = [(1, "directory", "UserCreated"), (2, "accounts", "UserCreated"),
                 (3, "accounts", "UserRenamed"), (4, "accounts", "UserRenamed")]


def printed_events(lines: list[str]) -> list[tuple[int, str, str]]:
    events = [json.loads(line) for line in lines]
    return [(e["position"], e["context"], e["type"]) for e in events]


def test_tap_on_an_ipc_endpoint_replays_the_store_without_being_told_the_catchup(node_factory,
                                                                                 tmp_path):
    endpoint = f"ipc://{tmp_path}/ev.sock"
    node = node_factory("--events-endpoint", endpoint)
    assert node.events_endpoint() == endpoint
    status, lines, err, _ = tool("common.tap", "--endpoint", endpoint, "--from-position", "1",
                                 "--count", "4")
    assert status == 0, err
    assert printed_events(lines) == SAMPLE_EVENTS
    # No naming convention could have found it: nothing but the events socket is there.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.sock"]


def test_tap_on_tcp_finds_a_catchup_port_of_any_number(node_factory):
    events_port, catchup_port = free_ports(2)
    if catchup_port == events_port + 1:  # the old convention would find that one
        events_port, catchup_port = catchup_port, events_port
    endpoint = f"tcp://127.0.0.1:{events_port}"
    node_factory("--events-endpoint", endpoint,
                 "--catchup-endpoint", f"tcp://127.0.0.1:{catchup_port}")
    status, lines, err, _ = tool("common.tap", "--endpoint", endpoint, "--from-position", "2",
                                 "--count", "3")
    assert status == 0, err
    assert printed_events(lines) == SAMPLE_EVENTS[1:]


def assert_gave_up(status: int, lines: list[str], err: str, took: float, endpoint: str,
                   limit: float) -> None:
    assert status == 1, err
    assert lines == []
    assert f"could not reach a node at {endpoint} within {limit:g} s" in err, err
    assert "no node runs there" in err and "CURVE" in err, err
    assert limit <= took < limit + 10, f"gave up after {took:.1f} s, asked {limit} s"


def test_tap_and_client_give_up_where_no_node_runs(tmp_path):
    nowhere = f"ipc://{tmp_path}/nothing.sock"
    assert_gave_up(*tool("common.tap", "--endpoint", nowhere, "--connect-timeout", "1.5"),
                   nowhere, 1.5)
    port = free_ports(1)[0]
    closed = f"tcp://127.0.0.1:{port}"
    assert_gave_up(*tool("router.client", "--connect", closed, "--connect-timeout", "1.5",
                         stdin=b'{"type": "init", "msg_id": 1}\n'), closed, 1.5)


def test_tap_and_client_name_a_failed_handshake(tmp_path):
    """A CURVE server where a tool without keys knocks: the handshake fails, and says so."""
    ctx = zmq.Context()
    server_public, server_secret = zmq.curve_keypair()
    sockets = []
    try:
        endpoints = []
        for kind in (zmq.PUB, zmq.ROUTER):
            sock = ctx.socket(kind)
            sock.setsockopt(zmq.LINGER, 0)
            sock.curve_server = True
            sock.curve_secretkey, sock.curve_publickey = server_secret, server_public
            endpoints.append(f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}")
            sockets.append(sock)
        status, _, err, _ = tool("common.tap", "--endpoint", endpoints[0],
                                 "--connect-timeout", "1.5")
        assert status == 1 and "the ZeroMQ handshake failed" in err, err
        status, _, err, _ = tool("router.client", "--connect", endpoints[1],
                                 "--connect-timeout", "1.5", stdin=b'{"type": "init"}\n')
        assert status == 1 and "the ZeroMQ handshake failed" in err, err
    finally:
        for sock in sockets:
            sock.close(0)
        ctx.term()


def test_tap_with_curve_keys_follows_a_node_and_with_a_refused_key_says_why(curve_node):
    """Service mode with CURVE on: with an allowed client key the tap finds the catch-up
    endpoint in the heartbeat and replays the store; with a key the node does not know, the
    node refuses the handshake and the tap says so instead of waiting for ever."""
    endpoint = curve_node.endpoints["EVENTS"]
    status, lines, err, _ = tool("common.tap", "--endpoint", endpoint, "--from-position", "1",
                                 "--count", "4", env=curve_node.peer_env(curve_node.alice_secret))
    assert status == 0, err
    assert printed_events(lines) == SAMPLE_EVENTS
    status, lines, err, _ = tool("common.tap", "--endpoint", endpoint, "--connect-timeout", "2",
                                 env=curve_node.peer_env(curve_node.rogue_secret))
    assert status == 1 and lines == [], err
    assert "refused this program's CURVE key" in err, err


def test_tap_says_so_when_the_endpoint_sends_no_heartbeat():
    """Something that takes the connection but is not a node's event stream."""
    ctx = zmq.Context()
    quiet = ctx.socket(zmq.PUB)
    quiet.setsockopt(zmq.LINGER, 0)
    endpoint = f"tcp://127.0.0.1:{quiet.bind_to_random_port('tcp://127.0.0.1')}"
    try:
        status, lines, err, _ = tool("common.tap", "--endpoint", endpoint,
                                     "--connect-timeout", "1.5")
    finally:
        quiet.close(0)
        ctx.term()
    assert status == 1 and lines == []
    assert f"{endpoint} took the connection but sent no heartbeat" in err, err
    assert "--catchup-endpoint" in err


# -- item 7: the tools from any python, and through make ---------------------------------------

@pytest.mark.parametrize("module, program", [("common.tap", "cqrs-tap"),
                                             ("router.client", "cqrs-client")])
def test_a_python_without_pyzmq_re_runs_the_tool_under_the_venv(module, program):
    """`-S` leaves site-packages out, so this interpreter cannot import pyzmq: the tool
    re-runs itself under .venv (its help is printed, after `import zmq`)."""
    done = subprocess.run([sys.executable, "-S", "-m", module, "--help"], cwd=ROOT,
                          capture_output=True, timeout=TIMEOUT, env=shell_env())
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(f"usage: {program}")
    assert "--connect-timeout" in done.stdout.decode()
    # Already re-run once (or no .venv to go to): it says what to do instead of looping.
    done = subprocess.run([sys.executable, "-S", "-m", module, "--help"], cwd=ROOT,
                          capture_output=True, timeout=TIMEOUT, env=shell_env(CQRS_REEXEC="1"))
    assert done.returncode == 1
    assert f"{program}: pyzmq and msgpack are needed" in done.stderr.decode()


@pytest.mark.parametrize("target, program", [("tap", "cqrs-tap"), ("client", "cqrs-client")])
def test_make_reaches_the_tools(target, program):
    done = subprocess.run(["make", target, "ARGS=--help"], cwd=ROOT, capture_output=True,
                          timeout=TIMEOUT, env=shell_env())
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(f"usage: {program}")


# -- item 5: settings out of range, and an unusable data folder --------------------------------

@pytest.mark.parametrize("flags, named, allowed", [
    (("--timeout", "0"), "--timeout", "from 0.001 to 86400"),
    (("--read-replicas", "0"), "--read-replicas", "from 1 to 64"),
    (("--max-line", "0"), "--max-line", "from 1 to"),
])
def test_a_setting_out_of_range_stops_the_node_before_it_starts(flags, named, allowed):
    replies, status, err = run_lines([{"type": "init", "msg_id": 1}], *flags)
    assert (status, replies) == (2, [])
    assert named in err and allowed in err, err
    assert "events endpoint:" not in err  # refused before anything started


def test_a_data_folder_that_cannot_be_made_answers_each_request_with_11_and_exits_1():
    """docs/protocol.md section 10: the node cannot run, so every request it read gets
    error 11 naming the reason, and the exit status is 1."""
    sent = [{"type": "GetUser", "msg_id": 1, "params": {"user_id": "user-123"}},
            {"type": "CreateUser", "msg_id": 2, "payload": {"name": "A", "email": "a@b.co"}}]
    replies, status, err = run_lines(sent, "--data-dir", "/proc/nope")
    assert status == 1, err
    assert len(replies) == len(sent), (replies, err[-2000:])
    for line, request in zip(replies, sent):
        body = json.loads(line)
        assert (body["type"], body["in_reply_to"], body["code"]) == ("error",
                                                                     request["msg_id"], 11)
        assert body["text"].startswith("temporarily unavailable: ") and "/proc/nope" in \
            body["text"], body
