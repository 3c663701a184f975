"""Gap-free delivery end to end (PROTOCOL.md section 7, DESIGN.md section 4).

Events lost between the write side and a read side -- dropped on purpose by the publisher
(CQRS_FAULT_DROP_EVERY), lost at the very tail, or lost to a read side frozen with SIGSTOP
through a burst larger than the queues -- are recovered from the store: afterwards every
projection equals a fold of the store itself.
"""
from __future__ import annotations

import os
import signal

import pytest

from common import store_url
from tests.support import bus, envelope
from tests.support.nodeproc import role_pid, wait_until
from tests.support.pipeline import run_all, run_commands
from tests.support.stats import process
from write_side.store import read_events

TIMEOUT = 60.0  # generous: a busy 2-core machine


# -- talking to the node ------------------------------------------------------------------

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


# -- the store and its fold ---------------------------------------------------------------

def store_events(data_dir) -> list[dict]:
    """Every stored event, in position order, read through the store interface (read-only:
    the node may still be running)."""
    events = read_events(store_url.resolve("", str(data_dir), ""))
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
        ask(envelope.get_user(sid), fold.get_user("accounts", sid))
        ask(envelope.history(sid), fold.history[sid])
    for sid in fold.users["directory"]:
        ask(bus.get_user(sid), fold.get_user("directory", sid))
    for context, dialect in (("directory", bus), ("accounts", envelope)):
        listed = fold.listed(context)
        for page in range(1, len(listed) // 1000 + 2):  # the last page is short (maybe empty)
            ask(dialect.list_users(page=page, limit=1000), listed[(page - 1) * 1000:page * 1000])

    replies = run_all(node, queries)
    wrong = [(q, r, e) for q, r, e in zip(queries, replies, expected) if r != e]
    assert not wrong, f"{len(wrong)} of {len(queries)} answers differ from the store; " \
                      f"first (query, got, expected): {wrong[0]}"
    return fold


# -- scripts --------------------------------------------------------------------------------

def mixed_commands(node, users: int, renames: int, deletes: int) -> int:
    """Create `users` users in each context, rename across both, delete some accounts users,
    in pipelined chunks of 200 so that each chunk's lost events show up as gaps.
    Every command succeeds and appends exactly one event; returns the number of commands."""
    creates = []
    for i in range(users):
        creates.append(bus.create(f"bus-{i}", f"bus-{i}@example.com", msg_id=len(creates) + 1))
        creates.append(envelope.create(f"acc-{i}", f"acc-{i}", msg_id=len(creates) + 1))
    replies = run_commands(node, creates, chunk=200)
    bus_ids = [r["events"][0]["payload"]["id"] for r in replies[0::2]]

    later, base = [], len(creates) + 1
    for i in range(renames):
        if i % 2:
            later.append(bus.rename(bus_ids[i % users], f"bus-{i}-r", msg_id=base + len(later)))
        else:
            later.append(envelope.rename(f"acc-{i % users}", f"acc-{i}-r", msg_id=base + len(later)))
    for i in range(deletes):
        later.append(envelope.delete(f"acc-{i * 3 % users}", msg_id=base + len(later)))
    run_commands(node, later, chunk=200)
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
    run_commands(node, [envelope.create("hb-1", "One", msg_id=1)])
    before = wait_read_at(node, 1)["counters"]

    run_commands(node, [envelope.create(f"hb-{i}", f"N{i}", msg_id=i) for i in range(2, 7)])
    after = wait_read_at(node, 6)["counters"]  # no query was sent: nothing nudged it
    delta = {k: after[k] - before[k] for k in after}
    assert delta["received"] == 4 and delta["gaps"] == 0, delta  # 2..5 live, 6 lost, no gap seen
    assert delta["catchups"] >= 1 and delta["caught_up_events"] == 1, delta
    writer = wait_process(node, "write", lambda p: p["counters"]["published"] == 6)
    assert writer["counters"]["dropped_on_purpose"] == 1, writer

    replies = run_all(node, [envelope.get_user("hb-6", msg_id=10), envelope.list_users(msg_id=11)])
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
    run_commands(node, [envelope.create(f"f-{i}", f"f-{i}", msg_id=i + 1)
                        for i in range(streams)])
    before = wait_read_at(node, 4 + streams)["counters"]
    reader = role_pid(node, "read_side")

    os.kill(reader, signal.SIGSTOP)
    try:
        burst = [envelope.rename(f"f-{i % streams}", f"f-{i}", msg_id=1000 + i)
                 for i in range(BURST)]
        burst += [bus.create(f"bus-{i}", f"bus-{i}@example.com", msg_id=1000 + BURST + i)
                  for i in range(500)]
        run_commands(node, burst)
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
