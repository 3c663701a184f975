"""Several read replicas (--read-replicas 3): queries are spread over them, a replica killed
mid-run costs no reply, and the answers are those of a single read side."""
from __future__ import annotations

import json
import os
import re
import signal

from tests.support import bus, envelope
from tests.support.nodeproc import wait_until
from tests.support.normalise import normalised
from tests.support.pipeline import run_all, run_commands
from tests.support.stats import processes

TIMEOUT = 60.0  # generous: a busy 2-core machine
USERS = 100
COMMAND_TYPES = ("command", "CreateUser", "RenameUser", "ChangeEmail")  # in the scripts here


# -- talking to the node ------------------------------------------------------------------

def wait_ready(node, count: int, position: int) -> dict[int, dict]:
    """Poll stats until exactly `count` read sides are ready and known to be at `position`
    (the router prefers replicas it knows to be there); return them by pid."""
    seen: dict[int, dict] = {}

    def ready() -> bool:
        seen.clear()
        seen.update(processes(node, "read"))
        return len(seen) == count and all(p["ready"] and p["position"] == position
                                          for p in seen.values())

    assert wait_until(ready, TIMEOUT, 0.2), f"not {count} read sides ready at {position}: {seen}"
    return seen


def queries_served(node, before: dict[int, int], total: int) -> dict[int, int]:
    """Poll stats until these read sides' `queries` counters have grown by `total` in all
    (they come with status messages, twice a second); return each one's share by pid."""
    counts: dict[int, int] = {}

    def all_counted() -> bool:
        sides = processes(node, "read")
        counts.update({pid: sides.get(pid, {}).get("counters", {}).get("queries", 0) - n
                       for pid, n in before.items()})
        return sum(counts.values()) == total

    assert wait_until(all_counted, TIMEOUT, 0.2), f"not {total} queries counted: {counts}"
    return counts


def queries_so_far(replicas: dict[int, dict]) -> dict[int, int]:
    return {pid: p["counters"]["queries"] for pid, p in replicas.items()}


# -- scripts --------------------------------------------------------------------------------

def create_users(node) -> dict[str, str]:
    """USERS accounts users r-0.. named R0..; returns id -> name, the sample user included."""
    run_commands(node, [envelope.create(f"r-{i}", f"R{i}", msg_id=i + 1) for i in range(USERS)],
                 chunk=1000)
    return {"user-123": "John", **{f"r-{i}": f"R{i}" for i in range(USERS)}}


def queries(first_id: int, count: int, names: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """A mix of queries of both dialects with the reply each must get, given the users."""
    listed = [{"id": sid, "name": name} for sid, name in names.items()]
    asked, expected = [], []
    for msg_id in range(first_id, first_id + count):
        k = msg_id % 5
        sid = f"r-{msg_id % USERS}"
        if k == 0:
            ask, data = envelope.get_user(sid, msg_id=msg_id), {"id": sid, "name": names[sid]}
        elif k == 1:
            ask = bus.get_user("user-123", msg_id=msg_id)
            data = {"id": "user-123", "name": "John Doe"}
        elif k == 2:
            ask = envelope.at_time("user-123", "2024-01-15T00:00:00Z", msg_id=msg_id)
            data = {"id": "user-123", "name": "John Doe", "at_time": "2024-01-15T00:00:00Z"}
        elif k == 3:
            page = msg_id // 5 % 12 + 1
            ask = envelope.list_users(msg_id=msg_id, page=page, limit=10)
            data = listed[(page - 1) * 10:page * 10]
        else:
            ask, data = envelope.get_user(f"nobody-{msg_id}", msg_id=msg_id), None
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
    assert first_wrong(run_all(node, asked, chunk=1000), expected) is None
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
        rename = envelope.rename(sid, names[sid], msg_id=msg_id)
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
        node.send(envelope.rename(sid, name, msg_id=1000 + 2 * i),
                  envelope.get_user(sid, msg_id=1001 + 2 * i))
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
            add(bus.create(f"u{n}", f"u{n}@example.com"))
        elif k == 1:
            add(envelope.create(f"a-{n}", f"a{n}"))
        elif k == 2:
            add(envelope.rename(f"a-{n // 2}", f"a{n}-r"))
        elif k == 3:
            add(bus.rename("user-123", f"J{n}"))
        elif k == 4:
            add(envelope.delete(f"a-{n // 3}"))  # some repeat: "User is deleted"
        else:
            add(bus.change_email("user-123", f"j{n}@example.com"))
        add(bus.get_user("user-123"))
        add(bus.list_users(page=n % 3 + 1, limit=20))
        add(bus.find_by_email(f"U{n}@example.com"))
        add(bus.find_by_email(f"j{n}@example.com"))
        add(envelope.get_user(f"a-{n // 2}"))
        add(envelope.history(f"a-{n // 3}"))
        add(envelope.at_time("user-123", "2024-01-15T00:00:00Z"))
        add(envelope.at_time(f"a-{n}", "2999-01-01T00:00:00Z"))
        add(envelope.list_users(page=n % 4 + 1, limit=15))
    return out


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
    single, triple = normalised(single), normalised(triple)
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(single, triple)) if a != b]
    assert not diff, f"{len(diff)} replies differ; first (index, 1 replica, 3 replicas): {diff[0]}"
