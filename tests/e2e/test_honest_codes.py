"""Error codes tell the truth (Maelstrom's meanings): 11 only for what certainly did not
run, 0 for what a back-end took and did not answer in time; and a client that reads its
replies only at the end is never stuck behind a full stdout."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.support import bus
from tests.support.nodeproc import RUN_NODE, ROOT, role_pid, wait_until
from tests.support.stats import process

# The node's request deadline: longer than the router's 2 s silence check, so a command
# the stopped write side took is still waiting when the router drops that write side.
TIMEOUT = "4"


def create(i: int, email: str, msg_id: int) -> dict:
    """CreateUser number i, with a command id of its own so a retry is recognised."""
    return bus.command("CreateUser", {"name": f"N{i}", "email": email}, msg_id=msg_id,
                       command_id=f"stop-{i}")


def test_a_stopped_write_side_gets_code_0_never_11_and_nothing_is_done_twice(node_factory):
    node = node_factory("--no-sample-data", "--timeout", TIMEOUT)
    assert wait_until(lambda: process(node, "write").get("ready"), 30)
    writer = role_pid(node, "write_side")
    emails = [bus.new_email(f"stop{i}") for i in range(400)]
    os.kill(writer, signal.SIGSTOP)
    try:
        # The first wave reaches the stopped write side: taken, outcome unknown (code 0).
        node.send(*(create(i, email, msg_id=i + 1) for i, email in enumerate(emails[:200])))
        # Once the router has dropped it as silent, the second wave reaches no write side
        # at all: certainly not run (code 11).
        assert wait_until(lambda: f"write side pid {writer} lost" in node.stderr(), 30)
        node.send(*(create(i, email, msg_id=i + 1)
                    for i, email in enumerate(emails[200:], start=200)))
        replies = [node.read(30) for _ in emails]
    finally:
        os.kill(writer, signal.SIGCONT)
    codes = [r.get("code") for r in replies]
    assert all(r["type"] == "error" for r in replies), replies[:3]
    assert set(codes[:200]) == {0} and set(codes[200:]) == {11}, codes
    # Each code must match the command's fate. Once the write side is back it has run what
    # it had taken; nothing answered 11 ran. Retried with their command ids, all succeed,
    # and nothing is created twice.
    ids = iter(range(3000, 9000))

    def found(email: str) -> bool:
        return node.request(bus.find_by_email(email, msg_id=next(ids)), 30)["data"] is not None

    # The first wave was taken: it runs once the write side goes on (all in one batch).
    assert wait_until(lambda: found(emails[199]), 30, 0.2)
    assert all(found(email) for email in emails[:200])
    assert not any(found(email) for email in emails[200:])
    again = [node.request(create(i, email, msg_id=1000 + i), 30)
             for i, email in enumerate(emails)]
    assert all(r["type"] == "command_result" and r["success"] for r in again), again[:3]
    listed = node.request(bus.list_users(msg_id=9999, limit=1000), 30)["data"]
    assert len(listed) == len(emails)


def test_a_client_that_reads_only_at_the_end_gets_every_reply(tmp_path):
    """5,000 requests written in small pieces before a single reply is read: the node keeps
    reading stdin while its replies wait for room in the pipe."""
    count = 5_000
    lines = [json.dumps(bus.get_user("user-123", msg_id=i + 1)).encode() + b"\n"
             for i in range(count)]
    proc = subprocess.Popen([sys.executable, RUN_NODE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "err", "wb"), cwd=ROOT)
    try:
        for start in range(0, count, 10):  # small pieces, no read in between
            proc.stdin.write(b"".join(lines[start:start + 10]))
            proc.stdin.flush()
        proc.stdin.close()
        out = proc.stdout.read()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    replies = [json.loads(line) for line in out.splitlines()]
    assert [r["in_reply_to"] for r in replies] == list(range(1, count + 1))
    assert all(r["data"] == {"id": "user-123", "name": "John Doe"} for r in replies)
