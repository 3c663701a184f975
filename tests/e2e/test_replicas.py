"""Several read replicas (--read-replicas 3): queries are spread over them, a replica killed
mid-run costs no reply, and the answers are those of a single read side."""
from __future__ import annotations

import json
import os
import re
import signal

from tests.support.nodeproc import wait_until

TIMEOUT = 60.0  # generous: a busy 2-core machine
STATS_ID = 1_000_000_000  # msg_id of stats requests, far from the scripts' ids
USERS = 100
SAMPLE_TIMES = {"2024-01-01T00:00:00.000000Z", "2024-01-10T00:00:00.000000Z",
                "2024-02-01T00:00:00.000000Z"}
COMMAND_TYPES = ("command", "CreateUser", "RenameUser", "ChangeEmail")  # in the scripts here
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# -- talking to the node ------------------------------------------------------------------

def read_sides(node) -> dict[int, dict]:
    """pid -> stats entry of every read side the router knows (call with no reply pending)."""
    reply = node.request({"type": "stats", "msg_id": STATS_ID}, timeout=TIMEOUT)
    assert reply["type"] == "stats_result" and reply["in_reply_to"] == STATS_ID, reply
    return {p["pid"]: p for p in reply["data"]["processes"] if p["role"] == "read"}


def wait_ready(node, count: int, position: int) -> dict[int, dict]:
    """Poll stats until exactly `count` read sides are ready and known to be at `position`
    (the router prefers replicas it knows to be there); return them by pid."""
    seen: dict[int, dict] = {}

    def ready() -> bool:
        seen.clear()
        seen.update(read_sides(node))
        return len(seen) == count and all(p["ready"] and p["position"] == position
                                          for p in seen.values())

    assert wait_until(ready, TIMEOUT, 0.2), f"not {count} read sides ready at {position}: {seen}"
    return seen


def queries_served(node, before: dict[int, int], total: int) -> dict[int, int]:
    """Poll stats until these read sides' `queries` counters have grown by `total` in all
    (they come with status messages, twice a second); return each one's share by pid."""
    counts: dict[int, int] = {}

    def all_counted() -> bool:
        sides = read_sides(node)
        counts.update({pid: sides.get(pid, {}).get("counters", {}).get("queries", 0) - n
                       for pid, n in before.items()})
        return sum(counts.values()) == total

    assert wait_until(all_counted, TIMEOUT, 0.2), f"not {total} queries counted: {counts}"
    return counts


def queries_so_far(replicas: dict[int, dict]) -> dict[int, int]:
    return {pid: p["counters"]["queries"] for pid, p in replicas.items()}


def run_all(node, messages: list[dict], chunk: int = 1000) -> list[dict]:
    """Pipeline the messages `chunk` at a time, reading one reply each, in order."""
    replies = []
    for start in range(0, len(messages), chunk):
        part = messages[start:start + chunk]
        node.send(*part)
        replies += [node.read(timeout=TIMEOUT) for _ in part]
    return replies


# -- scripts --------------------------------------------------------------------------------

def env_command(msg_id: int, kind: str, sid: str, name: str | None = None) -> dict:
    payload = {"id": sid} if name is None else {"id": sid, "name": name}
    return {"type": "command", "msg_id": msg_id, "command": {"type": kind, "payload": payload}}


def env_query(msg_id: int, kind: str, **params) -> dict:
    return {"type": "query", "msg_id": msg_id, "query": {"type": kind, "params": params}}


def create_users(node) -> dict[str, str]:
    """USERS accounts users r-0.. named R0..; returns id -> name, the sample user included."""
    replies = run_all(node, [env_command(i + 1, "CreateUser", f"r-{i}", f"R{i}")
                             for i in range(USERS)])
    assert all(r.get("success") is True for r in replies), replies[:3]
    return {"user-123": "John", **{f"r-{i}": f"R{i}" for i in range(USERS)}}


def queries(first_id: int, count: int, names: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """A mix of queries of both dialects with the reply each must get, given the users."""
    listed = [{"id": sid, "name": name} for sid, name in names.items()]
    asked, expected = [], []
    for msg_id in range(first_id, first_id + count):
        k = msg_id % 5
        sid = f"r-{msg_id % USERS}"
        if k == 0:
            ask, data = env_query(msg_id, "GetUser", userId=sid), {"id": sid, "name": names[sid]}
        elif k == 1:
            ask = {"type": "GetUser", "msg_id": msg_id, "params": {"user_id": "user-123"}}
            data = {"id": "user-123", "name": "John Doe"}
        elif k == 2:
            ask = env_query(msg_id, "GetUserAtTime", userId="user-123",
                            timestamp="2024-01-15T00:00:00Z")
            data = {"id": "user-123", "name": "John Doe", "at_time": "2024-01-15T00:00:00Z"}
        elif k == 3:
            page = msg_id // 5 % 12 + 1
            ask = env_query(msg_id, "ListUsers", page=page, limit=10)
            data = listed[(page - 1) * 10:page * 10]
        else:
            ask, data = env_query(msg_id, "GetUser", userId=f"nobody-{msg_id}"), None
        asked.append(ask)
        expected.append({"type": "query_result", "in_reply_to": msg_id, "data": data})
    return asked, expected


def first_wrong(replies: list[dict], expected: list[dict]):
    """(index, got, expected) of the first wrong reply, or None."""
    for i, (got, want) in enumerate(zip(replies, expected)):
        if got != want:
            return i, got, want
    return None if len(replies) == len(expected) else (len(replies), None, None)


# -- tests ------------------------------------------------------------------------------------

def test_queries_are_answered_and_spread_over_three_replicas(node_factory):
    """10,000 pipelined queries (batches of 1,000): every answer right, and each of the three
    replicas answers at least 20% of them (their `queries` counters in stats)."""
    node = node_factory("--read-replicas", "3")
    names = create_users(node)
    before = queries_so_far(wait_ready(node, 3, 4 + USERS))

    asked, expected = queries(1000, 10_000, names)
    assert first_wrong(run_all(node, asked), expected) is None
    counts = queries_served(node, before, len(asked))
    assert all(n >= 0.2 * len(asked) for n in counts.values()), counts


def test_replica_killed_mid_run_costs_no_reply(node_factory):
    """SIGKILL one of three replicas with queries in flight to it: every one of 10,000 queries,
    and the commands between them, still gets its right reply; the replica comes back.

    To be sure some queries are in flight, the victim is stopped (SIGSTOP) before its batch
    goes out and killed once the batch's command is answered: the router releases the queries
    behind a command, and hands them out, before it writes that command's reply."""
    node = node_factory("--read-replicas", "3")
    names = create_users(node)
    replicas = wait_ready(node, 3, 4 + USERS)
    victim = sorted(replicas)[1]

    batches, msg_id = 20, 1000
    for batch in range(batches):
        sid = f"r-{batch}"
        names[sid] = f"R{batch}-renamed"  # the queries after it must see the rename
        rename = env_command(msg_id, "RenameUser", sid, names[sid])
        asked, expected = queries(msg_id + 1, 500, names)
        kill = batch == batches // 2
        if kill:
            os.kill(victim, signal.SIGSTOP)
        node.send(rename, *asked)
        replies = [node.read(timeout=TIMEOUT)]
        if kill:
            os.kill(victim, signal.SIGKILL)
        replies += [node.read(timeout=TIMEOUT) for _ in asked]
        assert replies[0] == {"type": "command_result", "in_reply_to": msg_id, "success": True,
                              "events": [{"eventType": "UserRenamed", "aggregateId": sid}]}
        wrong = first_wrong(replies[1:], expected)
        assert wrong is None, f"batch {batch}: reply {wrong[0]} is {wrong[1]}, not {wrong[2]}"
        msg_id += 1 + len(asked)

    resent = re.search(rf"read side pid {victim} lost; re-sending (\d+) requests", node.stderr())
    assert resent and int(resent.group(1)) > 0, "no query was in flight to the killed replica"
    back = wait_ready(node, 3, 4 + USERS + batches)
    assert victim not in back and set(replicas) - {victim} < set(back), (replicas, back)


def test_each_query_sees_the_command_before_it_despite_lost_events(node_factory):
    """With every other event lost on its way to the replicas, a query sent right behind a
    rename still sees it, whichever replica answers (it must wait and catch up first)."""
    node = node_factory("--read-replicas", "3", env={"CQRS_FAULT_DROP_EVERY": "2"})
    create_users(node)
    wait_ready(node, 3, 4 + USERS)
    for i in range(60):
        sid, name = f"r-{i % 7}", f"step-{i}"
        node.send(env_command(1000 + 2 * i, "RenameUser", sid, name),
                  env_query(1001 + 2 * i, "GetUser", userId=sid))
        assert node.read(timeout=TIMEOUT)["success"] is True
        assert node.read(timeout=TIMEOUT) == {"type": "query_result", "in_reply_to": 1001 + 2 * i,
                                              "data": {"id": sid, "name": name}}


def comparison_script() -> list[dict]:
    """Commands of both dialects, each followed by queries of every kind about what changed."""
    out: list[dict] = []

    def add(message: dict) -> None:
        out.append({**message, "msg_id": len(out) + 1})

    for i in range(480):
        k, n = i % 6, i // 6
        if k == 0:
            add({"type": "CreateUser", "payload": {"name": f"u{n}", "email": f"u{n}@example.com"}})
        elif k == 1:
            add(env_command(0, "CreateUser", f"a-{n}", f"a{n}"))
        elif k == 2:
            add(env_command(0, "RenameUser", f"a-{n // 2}", f"a{n}-r"))
        elif k == 3:
            add({"type": "RenameUser", "payload": {"id": "user-123", "name": f"J{n}"}})
        elif k == 4:
            add(env_command(0, "DeleteUser", f"a-{n // 3}"))  # some repeat: "User is deleted"
        else:
            add({"type": "ChangeEmail",
                 "payload": {"id": "user-123", "email": f"j{n}@example.com"}})
        add({"type": "GetUser", "params": {"user_id": "user-123"}})
        add({"type": "ListUsers", "params": {"page": n % 3 + 1, "limit": 20}})
        add({"type": "FindUserByEmail", "params": {"email": f"U{n}@example.com"}})
        add({"type": "FindUserByEmail", "params": {"email": f"j{n}@example.com"}})
        add(env_query(0, "GetUser", userId=f"a-{n // 2}"))
        add(env_query(0, "GetUserHistory", userId=f"a-{n // 3}"))
        add(env_query(0, "GetUserAtTime", userId="user-123", timestamp="2024-01-15T00:00:00Z"))
        add(env_query(0, "GetUserAtTime", userId=f"a-{n}", timestamp="2999-01-01T00:00:00Z"))
        add(env_query(0, "ListUsers", page=n % 4 + 1, limit=15))
    return out


def normalized(lines: list[str]) -> list[str]:
    """Reply lines with what legitimately differs between two runs made equal: the random ids
    of bus users (numbered by first appearance) and the times of events recorded now."""
    ids: dict[str, str] = {}

    def walk(value, key: str = ""):
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if key == "recordedAt" and value not in SAMPLE_TIMES:
            return "<recorded now>"
        if isinstance(value, str) and UUID_RE.fullmatch(value):
            return ids.setdefault(value, f"<id {len(ids)}>")
        return value

    return [json.dumps(walk(json.loads(line))) for line in lines]


def run_script(node, script: list[dict], replicas: int) -> list[str]:
    """Run the script on a node with all its replicas ready; check each replica took part."""
    before = queries_so_far(wait_ready(node, replicas, 4))
    lines = []
    for start in range(0, len(script), 1000):
        part = script[start:start + 1000]
        node.send(*part)
        lines += [node.read_line(timeout=TIMEOUT) for _ in part]
    counts = queries_served(node, before, sum(m["type"] not in COMMAND_TYPES for m in script))
    assert all(counts.values()), f"a replica answered none of the script: {counts}"
    return lines


def test_answers_equal_those_of_a_single_replica(node_factory):
    """The same script of commands and queries on a 1-replica node and a 3-replica node:
    the same replies, line for line (bus ids and fresh timestamps aside)."""
    script = comparison_script()
    single = run_script(node_factory(), script, 1)
    triple = run_script(node_factory("--read-replicas", "3"), script, 3)
    assert len(single) == len(triple) == len(script)
    errors = [line for line in single if json.loads(line)["type"] == "error"]
    assert not errors, errors[:3]
    single, triple = normalized(single), normalized(triple)
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(single, triple)) if a != b]
    assert not diff, f"{len(diff)} replies differ; first (index, 1 replica, 3 replicas): {diff[0]}"
