"""Gap-free delivery end to end (PROTOCOL.md section 7, DESIGN.md section 4).

Events lost between the write side and a read side -- dropped on purpose by the publisher
(CQRS_FAULT_DROP_EVERY), lost at the very tail, or lost to a read side frozen with SIGSTOP
through a burst larger than the queues -- are recovered from the store: afterwards every
projection equals a fold of the store itself.
"""
from __future__ import annotations

import os
import signal
import sqlite3

import msgpack
import pytest

from tests.support.nodeproc import wait_until
from tests.e2e.test_recovery import role_pid

TIMEOUT = 60.0  # generous: a busy 2-core machine
STATS_ID = 1_000_000_000  # msg_id of stats requests, far from the scripts' ids


# -- talking to the node ------------------------------------------------------------------

def stats(node) -> dict:
    """One stats answer (call only when no other reply is outstanding)."""
    reply = node.request({"type": "stats", "msg_id": STATS_ID}, timeout=TIMEOUT)
    assert reply["type"] == "stats_result" and reply["in_reply_to"] == STATS_ID, reply
    return reply["data"]


def process(node, role: str) -> dict:
    """The single back-end process of this role, as stats shows it ({} if none is known)."""
    found = [p for p in stats(node)["processes"] if p["role"] == role]
    assert len(found) <= 1, found
    return found[0] if found else {}


def wait_process(node, role: str, done, timeout: float = TIMEOUT) -> dict:
    """Poll stats until done(entry) holds for the process of this role; return its entry.
    (Counters come with status messages, about twice a second.)"""
    seen: list[dict] = []

    def check() -> bool:
        seen[:] = [process(node, role)]
        return bool(seen[0]) and done(seen[0])

    assert wait_until(check, timeout, 0.2), f"{role} side never got there: {seen}"
    return seen[0]


def wait_read_at(node, position: int, timeout: float = TIMEOUT) -> dict:
    """Poll stats until the read side reports itself ready at `position`; return its entry.

    The router also moves a read side's position on from its answers, while its counters come
    only with its status messages: a read side starts from position 0, so `applied` equal to
    `position` marks counters as fresh as the position."""
    return wait_process(node, "read", lambda p: p["ready"] and p["position"] == position
                        and p["counters"].get("applied") == position, timeout)


def run_all(node, messages: list[dict], chunk: int = 5_000) -> list[dict]:
    """Pipeline the messages `chunk` at a time, reading one reply each, in order."""
    replies = []
    for start in range(0, len(messages), chunk):
        part = messages[start:start + chunk]
        node.send(*part)
        replies += [node.read(timeout=TIMEOUT) for _ in part]
    assert [r.get("in_reply_to") for r in replies] == [m["msg_id"] for m in messages]
    return replies


def assert_all_succeeded(replies: list[dict]) -> None:
    failed = [r for r in replies if r.get("success") is not True]
    assert not failed, failed[:3]


# -- the store and its fold ---------------------------------------------------------------

def store_events(data_dir) -> list[dict]:
    """Every stored event (its msgpack body), in position order, read-only."""
    db = sqlite3.connect(f"file:{data_dir}/events.sqlite3?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT position, context, stream_id, version, body FROM events "
                          "ORDER BY position").fetchall()
    finally:
        db.close()
    events = []
    for position, context, stream_id, version, body in rows:
        event = msgpack.unpackb(body, raw=False)
        assert (event["position"], event["context"], event["stream_id"], event["version"]) == \
               (position, context, stream_id, version)
        events.append(event)
    assert [e["position"] for e in events] == list(range(1, len(events) + 1)), "store has gaps"
    return events


class Fold:
    """Both contexts folded from the store by PROTOCOL.md's rules (not the read side's code)."""

    def __init__(self, events: list[dict]) -> None:
        # context -> stream id -> {"name", "active"}; dicts keep creation order
        self.users: dict[str, dict[str, dict]] = {"accounts": {}, "directory": {}}
        self.history: dict[str, list[dict]] = {}  # accounts stream id -> GetUserHistory entries
        for event in events:
            self._apply(event)

    def _apply(self, event: dict) -> None:
        users, sid, data = self.users[event["context"]], event["stream_id"], event["data"]
        if event["type"] == "UserCreated":
            users[sid] = {"name": data["name"], "active": True}
        elif event["type"] == "UserRenamed":
            users[sid]["name"] = data["name"]
        elif event["type"] in ("UserDeleted", "UserDeactivated"):
            users[sid]["active"] = False
        if event["context"] == "accounts":
            self.history.setdefault(sid, []).append(
                {"eventType": event["type"], "version": event["version"],
                 "recordedAt": event["recorded_at"], "data": data})

    def get_user(self, context: str, sid: str) -> dict | None:
        user = self.users[context].get(sid)
        return {"id": sid, "name": user["name"]} if user and user["active"] else None

    def listed(self, context: str) -> list[dict]:
        return [{"id": sid, "name": u["name"]} for sid, u in self.users[context].items()
                if u["active"]]


def check_projections(node, data_dir, first_id: int) -> Fold:
    """Ask every query of every stream, and every ListUsers page, and compare with the fold."""
    fold = Fold(store_events(data_dir))
    queries, expected = [], []

    def ask(message: dict, data) -> None:
        message["msg_id"] = first_id + len(queries)
        queries.append(message)
        expected.append({"type": "query_result", "in_reply_to": message["msg_id"], "data": data})

    for sid in fold.users["accounts"]:
        ask({"type": "query", "query": {"type": "GetUser", "params": {"userId": sid}}},
            fold.get_user("accounts", sid))
        ask({"type": "query", "query": {"type": "GetUserHistory", "params": {"userId": sid}}},
            fold.history[sid])
    for sid in fold.users["directory"]:
        ask({"type": "GetUser", "params": {"user_id": sid}}, fold.get_user("directory", sid))
    for context in ("directory", "accounts"):
        listed = fold.listed(context)
        for page in range(1, len(listed) // 1000 + 2):  # the last page is short (maybe empty)
            params = {"page": page, "limit": 1000}
            message = ({"type": "ListUsers", "params": params} if context == "directory" else
                       {"type": "query", "query": {"type": "ListUsers", "params": params}})
            ask(message, listed[(page - 1) * 1000:page * 1000])

    replies = run_all(node, queries)
    wrong = [(q, r, e) for q, r, e in zip(queries, replies, expected) if r != e]
    assert not wrong, f"{len(wrong)} of {len(queries)} answers differ from the store; " \
                      f"first (query, got, expected): {wrong[0]}"
    return fold


# -- scripts --------------------------------------------------------------------------------

def bus_create(msg_id: int, i: int) -> dict:
    return {"type": "CreateUser", "msg_id": msg_id,
            "payload": {"name": f"bus-{i}", "email": f"bus-{i}@example.com"}}


def env_command(msg_id: int, kind: str, sid: str, name: str | None = None) -> dict:
    payload = {"id": sid} if name is None else {"id": sid, "name": name}
    return {"type": "command", "msg_id": msg_id, "command": {"type": kind, "payload": payload}}


def mixed_commands(node, users: int, renames: int, deletes: int) -> int:
    """Create `users` users in each context, rename across both, delete some accounts users,
    in pipelined chunks of 200 so that each chunk's lost events show up as gaps.
    Every command succeeds and appends exactly one event; returns the number of commands."""
    creates = []
    for i in range(users):
        creates.append(bus_create(len(creates) + 1, i))
        creates.append(env_command(len(creates) + 1, "CreateUser", f"acc-{i}", f"acc-{i}"))
    replies = run_all(node, creates, chunk=200)
    assert_all_succeeded(replies)
    bus_ids = [r["events"][0]["payload"]["id"] for r in replies[0::2]]

    later, base = [], len(creates) + 1
    for i in range(renames):
        if i % 2:
            later.append({"type": "RenameUser", "msg_id": base + len(later),
                          "payload": {"id": bus_ids[i % users], "name": f"bus-{i}-r"}})
        else:
            later.append(env_command(base + len(later), "RenameUser", f"acc-{i % users}",
                                     f"acc-{i}-r"))
    for i in range(deletes):
        later.append(env_command(base + len(later), "DeleteUser", f"acc-{i * 3 % users}"))
    assert_all_succeeded(run_all(node, later, chunk=200))
    return len(creates) + len(later)


# -- tests ------------------------------------------------------------------------------------

@pytest.mark.parametrize("drop_every", [7, 2])
def test_projections_equal_the_store_when_the_publisher_drops_events(
        node_factory, tmp_path, drop_every):
    """Every Nth publish is skipped: the read side sees the gaps, catches up from the store,
    and its answers equal a fold of the store (GetUser, GetUserHistory, ListUsers pages)."""
    node = node_factory("--data-dir", str(tmp_path),
                        env={"CQRS_FAULT_DROP_EVERY": str(drop_every)})
    wait_read_at(node, 4)  # sample data; live from here on, so drops show up as gaps
    commands = mixed_commands(node, users=1200, renames=2200, deletes=200)
    head = 4 + commands
    assert len(store_events(tmp_path)) == head

    fold = check_projections(node, tmp_path, first_id=100_000)
    assert len(fold.listed("directory")) == 1201 and len(fold.listed("accounts")) == 1001

    reader = wait_read_at(node, head)
    counters = reader["counters"]
    assert counters["gaps"] > 0 and counters["catchups"] > 1, counters
    assert counters["caught_up_events"] > 0 and counters["applied"] == head, counters
    writer = wait_process(node, "write", lambda p: p["counters"]["published"] == head)
    assert writer["counters"]["dropped_on_purpose"] == head // drop_every, writer


def test_lost_last_event_is_recovered_by_the_heartbeat_alone(node_factory, tmp_path):
    """The 6th publish is dropped and nothing follows it: only the heartbeat's head can reveal
    it. The read side must reach it with no further command or query, then a query sees it."""
    node = node_factory("--data-dir", str(tmp_path), "--no-sample-data",
                        env={"CQRS_FAULT_DROP_EVERY": "6"})
    wait_read_at(node, 0)
    assert_all_succeeded(run_all(node, [env_command(1, "CreateUser", "hb-1", "One")]))
    before = wait_read_at(node, 1)["counters"]

    assert_all_succeeded(run_all(node, [env_command(i, "CreateUser", f"hb-{i}", f"N{i}")
                                        for i in range(2, 7)]))
    after = wait_read_at(node, 6)["counters"]  # no query was sent: nothing nudged it
    delta = {k: after[k] - before[k] for k in after}
    assert delta["received"] == 4 and delta["gaps"] == 0, delta  # 2..5 live, 6 lost, no gap seen
    assert delta["catchups"] >= 1 and delta["caught_up_events"] == 1, delta
    writer = wait_process(node, "write", lambda p: p["counters"]["published"] == 6)
    assert writer["counters"]["dropped_on_purpose"] == 1, writer

    replies = run_all(node, [
        {"type": "query", "msg_id": 10, "query": {"type": "GetUser", "params": {"userId": "hb-6"}}},
        {"type": "query", "msg_id": 11, "query": {"type": "ListUsers", "params": {}}}])
    assert replies[0]["data"] == {"id": "hb-6", "name": "N6"}
    assert replies[1]["data"] == [{"id": "hb-1", "name": "One"}] + \
        [{"id": f"hb-{i}", "name": f"N{i}"} for i in range(2, 7)]
    check_projections(node, tmp_path, first_id=100)


BURST = 120_000  # events; more than the publisher's SNDHWM (100,000) plus kernel buffers


def test_read_side_frozen_through_a_burst_converges(node_factory, tmp_path):
    """SIGSTOP the read side, store more events than the queues between it and the publisher
    hold (so some are really lost), SIGCONT: it catches up to the head on its own and answers
    every query as the store says.

    A stopped process's ZeroMQ I/O thread is stopped too, so the messages pile up on the
    publisher's side (SNDHWM 100,000) rather than in the subscriber's RCVHWM (200,000) queue;
    the burst is sized to overflow the former, and the test checks that messages were lost.
    It goes in chunks of 5,000 commands: one pipeline of 120,000 outlasts the 5 s deadline."""
    node = node_factory("--data-dir", str(tmp_path))
    streams = 200
    assert_all_succeeded(run_all(node, [env_command(i + 1, "CreateUser", f"f-{i}", f"f-{i}")
                                        for i in range(streams)]))
    before = wait_read_at(node, 4 + streams)["counters"]
    reader = role_pid(node, "read_side")

    os.kill(reader, signal.SIGSTOP)
    try:
        burst = [env_command(1000 + i, "RenameUser", f"f-{i % streams}", f"f-{i}")
                 for i in range(BURST)]
        burst += [bus_create(1000 + BURST + i, i) for i in range(500)]
        assert_all_succeeded(run_all(node, burst))
    finally:
        os.kill(reader, signal.SIGCONT)
    head = 4 + streams + len(burst)

    after = wait_read_at(node, head, timeout=120)  # no query sent yet: it heals by itself
    assert role_pid(node, "read_side") == reader, "the read side was replaced, not recovered"
    received = after["counters"]["received"] - before["received"]
    assert received < len(burst), \
        f"the burst did not overflow the queues ({received} of {len(burst)} received live)"
    assert after["counters"]["caught_up_events"] - before["caught_up_events"] >= \
        len(burst) - received
    check_projections(node, tmp_path, first_id=10_000_000)
