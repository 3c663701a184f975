"""Crashes and restarts: nothing acknowledged is lost or applied twice, nothing is left running."""
from __future__ import annotations

import os
import signal
from collections import Counter

from common import store_url
from tests.support import envelope
from tests.support.nodeproc import alive, role_pid, wait_until
from write_side.store import read_events


def stream_counts(data_dir) -> dict[str, int]:
    """Events per accounts stream, read through the store interface (read-only)."""
    events = read_events(store_url.resolve("", str(data_dir), ""))
    return dict(Counter(e["stream_id"] for e in events if e["context"] == "accounts"))


def test_write_side_killed_with_commands_in_flight(node_factory, tmp_path):
    node = node_factory("--data-dir", str(tmp_path), "--no-sample-data")
    assert node.request({"type": "init", "msg_id": 0})["type"] == "init_ok"
    writer = role_pid(node, "write_side")
    n = 600
    node.send(*[envelope.create(f"k-{i}", f"N{i}", msg_id=i) for i in range(1, n // 2 + 1)])
    os.kill(writer, signal.SIGKILL)
    node.send(*[envelope.create(f"k-{i}", f"N{i}", msg_id=i) for i in range(n // 2 + 1, n + 1)])
    replies = [node.read(timeout=20) for _ in range(n)]
    assert [r["in_reply_to"] for r in replies] == list(range(1, n + 1))
    assert all(r.get("success") is True for r in replies), [r for r in replies if not r.get("success")][:3]
    node.close_stdin()
    assert node.wait() == 0
    assert stream_counts(tmp_path) == {f"k-{i}": 1 for i in range(1, n + 1)}
    assert "write side (pid" in node.stderr() and "restarting write side" in node.stderr()


def test_read_side_killed_during_queries(node_factory):
    node = node_factory()
    node.send(*[envelope.create(f"r-{i}", f"N{i}", msg_id=i) for i in range(1, 51)])
    assert all(node.read()["success"] for _ in range(50))
    reader = role_pid(node, "read_side")
    queries = [envelope.get_user(f"r-{1 + i % 50}", msg_id=100 + i) for i in range(400)]
    node.send(*queries[:200])
    os.kill(reader, signal.SIGKILL)
    node.send(*queries[200:])
    for i in range(400):
        reply = node.read(timeout=20)
        assert reply == {"type": "query_result", "in_reply_to": 100 + i,
                         "data": {"id": f"r-{1 + i % 50}", "name": f"N{1 + i % 50}"}}


def test_launcher_killed_leaves_no_process(node_factory):
    node = node_factory()
    assert node.request({"type": "init", "msg_id": 1})["type"] == "init_ok"
    children = node.children()
    assert len(children) >= 2
    runtime = node.runtime_dir()
    node.signal(signal.SIGKILL)
    node.wait()
    assert wait_until(lambda: not any(alive(p) for p in children), 2.5), \
        [p for p in children if alive(p)]
    assert wait_until(lambda: not os.path.exists(runtime), 5), "runtime folder left behind"


def test_restart_on_a_data_folder_restores_everything(node_factory, tmp_path):
    script = [
        {"type": "command", "msg_id": 1, "command": {"type": "CreateUser",
                                                    "payload": {"id": "p1", "name": "Ann"}}},
        {"type": "command", "msg_id": 2, "command": {"type": "RenameUser",
                                                    "payload": {"id": "p1", "name": "Bea"}}},
        {"type": "command", "msg_id": 3, "command": {"type": "CreateUser", "commandId": "once",
                                                    "payload": {"id": "p2", "name": "Cid"}}},
        {"type": "CreateUser", "msg_id": 4, "command_id": "bus-once",
         "payload": {"name": "Dee", "email": "dee@example.com"}},
    ]
    first = node_factory("--data-dir", str(tmp_path))
    first.send(*script)
    created = [first.read() for _ in script]
    assert all(r["success"] for r in created)
    probes = [envelope.history("p1", msg_id=10), envelope.history("user-123", msg_id=11),
              {"type": "query", "msg_id": 12, "query": {"type": "GetUserAtTime", "params": {
                  "userId": "user-123", "timestamp": "2024-01-15T09:00:00Z"}}},
              {"type": "ListUsers", "msg_id": 13, "params": {"limit": 100}},
              {"type": "query", "msg_id": 14, "query": {"type": "ListUsers", "params": {}}}]
    first.send(*probes)
    before = [first.read_line() for _ in probes]
    first.close_stdin()
    assert first.wait() == 0

    second = node_factory("--data-dir", str(tmp_path))
    second.send(*probes)
    assert [second.read_line() for _ in probes] == before
    # Client command ids survive the restart: the first replies come back, nothing runs twice.
    second.send({**script[2], "msg_id": 20}, {**script[3], "msg_id": 21})
    assert second.read() == {**created[2], "in_reply_to": 20}
    assert second.read() == {**created[3], "in_reply_to": 21}
    second.send({"type": "ListUsers", "msg_id": 22, "params": {"limit": 100}})
    names = [u["name"] for u in second.read()["data"]]
    assert names == ["John Doe", "Dee"]
    second.close_stdin()
    assert second.wait() == 0
    counts = stream_counts(tmp_path)
    assert counts == {"user-123": 3, "p1": 2, "p2": 1}  # sample data written once


def test_queries_wait_for_a_restarting_write_side_then_fail_with_11(node_factory, tmp_path):
    """With the write side gone for good, commands get error 11 at the deadline."""
    node = node_factory("--data-dir", str(tmp_path), "--timeout", "1")
    assert node.request({"type": "init", "msg_id": 0})["type"] == "init_ok"
    writer = role_pid(node, "write_side")
    os.kill(writer, signal.SIGSTOP)  # hung, not dead: it misses its status messages
    try:
        reply = node.request(envelope.create("h-1", "N1", msg_id=1), timeout=15)
        assert reply["type"] == "error" and reply["code"] in (0, 11), reply
        assert reply["in_reply_to"] == 1
    finally:
        os.kill(writer, signal.SIGCONT)
