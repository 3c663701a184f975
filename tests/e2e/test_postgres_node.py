"""The node on either engine: the storage promises end to end, each test run once with
`--data-dir D` (SQLite) and once with `--store postgresql://...` (a real server,
tests/support/postgres.py; `--data-dir` beside it keeps only the read sides' snapshots);
then what only a database server can do to a node: be down or refuse the login at start,
and go away under a running node and come back.
"""
from __future__ import annotations

import json
import os
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from common import store_url
from read_side.snapshot import FILE as SNAPSHOT_FILE
from tests.support import bus, envelope
from tests.support.nodeproc import role_pid, run_lines, wait_until
from tests.support.pipeline import run_all, run_commands
from tests.support.ports import free_events_endpoint
from write_side.store import read_events

WAIT = 60.0  # seconds at most for what should happen much sooner (a busy 2-core host)


@dataclass
class Engine:
    name: str
    args: list[str]  # what names the store (and the data folder) on the command line
    url: str         # the store, for reading it back (read-only)
    data_dir: Path

    def events(self) -> list[dict]:
        return read_events(self.url)

    def stream_counts(self, context: str = "accounts") -> dict[str, int]:
        return dict(Counter(e["stream_id"] for e in self.events() if e["context"] == context))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Engine:
    data = tmp_path / "data"
    if request.param == "sqlite":
        return Engine("sqlite", ["--data-dir", str(data)],
                      store_url.resolve("", str(data), "").text, data)
    url = request.getfixturevalue("postgres_store")
    return Engine("postgresql", ["--store", url, "--data-dir", str(data)], url, data)


# ---- the same promises on both engines ----------------------------------------------------

SCRIPT = [
    envelope.create("p1", "Ann", msg_id=1),
    envelope.rename("p1", "Bea", msg_id=2),
    envelope.create("p2", "Cid", msg_id=3, commandId="once"),
    bus.create("Dee", "dee@example.com", msg_id=4, command_id="bus-once"),
]
PROBES = [envelope.history("p1", msg_id=10), envelope.history("user-123", msg_id=11),
          envelope.at_time("user-123", "2024-01-15T09:00:00Z", msg_id=12),
          envelope.at_time("user-123", "2024-03-01T00:00:00Z", msg_id=13),
          bus.list_users(msg_id=14, limit=100), envelope.list_users(msg_id=15)]


def test_a_restart_restores_everything(node_factory, engine):
    """Histories, answers as of a past time, lists and command ids outlive the node."""
    first = node_factory(*engine.args)
    created = run_commands(first, SCRIPT)
    before = run_all(first, PROBES)
    assert [h["version"] for h in before[0]["data"]] == [1, 2]
    assert before[2]["data"] == {"id": "user-123", "name": "John Doe",
                                 "at_time": "2024-01-15T09:00:00Z"}
    first.close_stdin()
    assert first.wait() == 0

    second = node_factory(*engine.args)
    assert run_all(second, PROBES) == before
    # Client command ids survive the restart: the first replies come back, nothing runs twice.
    again = run_all(second, [{**SCRIPT[2], "msg_id": 20}, {**SCRIPT[3], "msg_id": 21}])
    assert again == [{**created[2], "in_reply_to": 20}, {**created[3], "in_reply_to": 21}]
    second.close_stdin()
    assert second.wait() == 0
    assert engine.stream_counts() == {"user-123": 3, "p1": 2, "p2": 1}  # sample data once
    if engine.name == "postgresql":  # the data folder holds the snapshots' place, no store
        assert not (engine.data_dir / "events.sqlite3").exists()
        assert not (engine.data_dir / "node.lock").exists()


def test_write_side_killed_mid_burst_runs_each_command_once(node_factory, engine):
    node = node_factory(*engine.args, "--no-sample-data")
    assert node.request({"type": "init", "msg_id": 0})["type"] == "init_ok"
    writer = role_pid(node, "write_side")
    n = 600
    node.send(*[envelope.create(f"k-{i}", f"N{i}", msg_id=i) for i in range(1, n // 2 + 1)])
    os.kill(writer, signal.SIGKILL)
    node.send(*[envelope.create(f"k-{i}", f"N{i}", msg_id=i) for i in range(n // 2 + 1, n + 1)])
    replies = [node.read(timeout=WAIT) for _ in range(n)]
    assert [r["in_reply_to"] for r in replies] == list(range(1, n + 1))
    assert all(r.get("success") is True for r in replies), \
        [r for r in replies if not r.get("success")][:3]
    node.close_stdin()
    assert node.wait() == 0
    assert engine.stream_counts() == {f"k-{i}": 1 for i in range(1, n + 1)}
    positions = [e["position"] for e in engine.events()]
    assert positions == list(range(1, n + 1))  # gap-free, although a batch died mid-way
    assert "restarting write side" in node.stderr()


def test_each_query_sees_the_commands_before_it(node_factory, engine):
    """Pipelined: every query right behind a command sees it."""
    node = node_factory(*engine.args)
    script = []
    for i in range(150):
        script += [envelope.create(f"r-{i}", f"R{i}", msg_id=2 * i + 1),
                   envelope.get_user(f"r-{i}", msg_id=2 * i + 2)]
    replies = run_all(node, script)
    for i in range(150):
        assert replies[2 * i]["success"] is True
        assert replies[2 * i + 1]["data"] == {"id": f"r-{i}", "name": f"R{i}"}
    listed = node.request(envelope.list_users(msg_id=1000, limit=1000))
    assert len(listed["data"]) == 151  # and the sample user


def test_read_replicas_answer_as_one(node_factory, engine):
    node = node_factory(*engine.args, "--read-replicas", "3")
    run_commands(node, [envelope.create(f"q-{i}", f"Q{i}", msg_id=i + 1) for i in range(60)])
    asked = [envelope.get_user(f"q-{i % 60}", msg_id=1000 + i) for i in range(600)]
    replies = run_all(node, asked, chunk=200)
    assert [r["data"] for r in replies] == [{"id": f"q-{i % 60}", "name": f"Q{i % 60}"}
                                            for i in range(600)]


def test_a_restart_takes_up_the_snapshot(node_factory, engine):
    env = {"CQRS_SNAPSHOT_MIN": "20"}
    node = node_factory(*engine.args, env=env)
    run_commands(node, [envelope.create(f"s-{i}", f"S{i}", msg_id=i + 1) for i in range(40)])
    snapshot = engine.data_dir / SNAPSHOT_FILE
    assert wait_until(snapshot.exists, WAIT), "no snapshot was written"
    run_commands(node, [envelope.rename(f"s-{i}", f"T{i}", msg_id=100 + i) for i in range(5)])
    before = run_all(node, PROBES + [envelope.history("s-3", msg_id=30)])
    node.close_stdin()
    assert node.wait() == 0

    again = node_factory(*engine.args, env=env)
    assert run_all(again, PROBES + [envelope.history("s-3", msg_id=30)]) == before
    assert "took up the snapshot at position" in again.stderr()


def test_the_tap_prints_the_store_from_position_1(node_factory, engine):
    from tests.e2e.test_tap import TapProcess

    endpoint = free_events_endpoint()
    node = node_factory("--events-endpoint", endpoint, *engine.args)
    run_commands(node, [envelope.create(f"t-{i}", f"T{i}", msg_id=i + 1) for i in range(100)])
    total = 4 + 100 + 50
    # On PostgreSQL the tap reads what it missed from the database itself.
    store = ["--store", engine.url] if engine.name == "postgresql" else []
    tap = TapProcess(endpoint, "--from-position", "1", "--count", str(total), *store)
    try:
        run_commands(node, [envelope.rename(f"t-{i}", f"U{i}", msg_id=500 + i)
                            for i in range(50)])
        status, printed = tap.finish(WAIT)
    finally:
        tap.stop()
    assert status == 0
    assert printed == [json.dumps(e) for e in engine.events()]


def test_an_email_set_then_changed_in_one_batch_is_free_again(node_factory, engine):
    """A claim made and given up within one batch is not left in the store."""
    node = node_factory(*engine.args, "--no-sample-data")
    (made,) = run_commands(node, [bus.create("Ann", "a@x.io", msg_id=1)])
    uid = made["events"][0]["payload"]["id"]
    # One write, so the router hands them to the write side as one batch.
    run_commands(node, [bus.change_email(uid, "b@x.io", msg_id=2),
                        bus.change_email(uid, "c@x.io", msg_id=3)])
    node.close_stdin()
    assert node.wait() == 0
    again = node_factory(*engine.args, "--no-sample-data")  # from the store alone
    replies = run_all(again, [bus.create("Bob", "b@x.io", msg_id=4),
                              bus.create("Cy", "c@x.io", msg_id=5),
                              bus.create("Di", "a@x.io", msg_id=6)])
    assert [r.get("success") for r in replies] == [True, False, True], replies


# ---- a database server that is not there ----------------------------------------------------

GET = envelope.get_user("s1", msg_id=2)
CREATE = envelope.create("s1", "Sam", msg_id=1)


def test_a_server_that_is_down_at_start_answers_11_and_exits_1(postgres_cluster):
    url = postgres_cluster.url("cqrs").replace(f":{postgres_cluster.port}/", ":1/")
    url = url.replace("postgres@", "postgres:s3cret@")
    out, status, err = run_lines([CREATE, GET], "--store", url)
    assert status == 1
    assert len(out) == 2, (out, err)
    for line, msg_id in zip(out, (1, 2)):
        reply = json.loads(line)
        assert (reply["type"], reply["in_reply_to"], reply["code"]) == ("error", msg_id, 11)
        assert reply["text"].startswith("temporarily unavailable: cannot connect to the "
                                        "database postgresql://postgres@127.0.0.1:1/cqrs: ")
        assert "Connection refused" in reply["text"]
    assert "s3cret" not in "".join(out) + err


def test_a_login_refused_at_start_answers_11_naming_the_reason(postgres_cluster):
    url = postgres_cluster.url("postgres").replace("postgres@", "nobody:s3cret@")
    out, status, err = run_lines([CREATE], "--store", url)
    assert status == 1 and len(out) == 1, (out, err)
    reply = json.loads(out[0])
    assert reply["code"] == 11 and 'role "nobody" does not exist' in reply["text"], reply
    assert "s3cret" not in out[0] + err


def test_a_server_lost_under_a_running_node_and_back(node_factory, postgres_cluster,
                                                     postgres_store):
    """Stopped: the commands get error 11 (or 0, outcome unknown) and queries are still
    answered; back: commands succeed at once, and sent again with their ids, nothing is
    lost or doubled."""
    node = node_factory("--store", postgres_store, "--no-sample-data")
    run_commands(node, [envelope.create(f"a-{i}", f"A{i}", msg_id=i + 1) for i in range(20)])
    # Answered once the read side has caught up: it then has every user in memory.
    assert node.request(envelope.get_user("a-19", msg_id=50))["data"]["name"] == "A19"
    postgres_cluster.stop_server()
    try:
        lost = [envelope.create(f"b-{i}", f"B{i}", msg_id=100 + i, commandId=f"b-{i}")
                for i in range(10)]
        replies = run_all(node, lost)
        assert all(r["type"] == "error" and r["code"] in (0, 11) for r in replies), replies
        assert "event store: " in replies[0]["text"]
        # The read side serves what it has.
        answered = run_all(node, [envelope.get_user(f"a-{i}", msg_id=200 + i)
                                  for i in range(20)])
        assert [r.get("data") for r in answered] == [{"id": f"a-{i}", "name": f"A{i}"}
                                                     for i in range(20)], answered[:2]
    finally:
        postgres_cluster.start_server()
    # At once: the next batch makes a new connection.
    again = run_commands(node, [{**c, "msg_id": 300 + i} for i, c in enumerate(lost)])
    assert all(r["success"] for r in again)
    again_twice = run_all(node, [{**c, "msg_id": 400 + i} for i, c in enumerate(lost)])
    assert [{**r, "in_reply_to": 0} for r in again_twice] == \
        [{**r, "in_reply_to": 0} for r in again]  # the stored results: run once
    assert node.request(envelope.get_user("b-9", msg_id=500))["data"] == {"id": "b-9",
                                                                          "name": "B9"}
    node.close_stdin()
    assert node.wait() == 0
    counts = Counter(e["stream_id"] for e in read_events(postgres_store))
    assert counts == Counter({**{f"a-{i}": 1 for i in range(20)},
                              **{f"b-{i}": 1 for i in range(10)}})
    assert [e["position"] for e in read_events(postgres_store)] == list(range(1, 31))
