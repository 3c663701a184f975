"""Service mode under load and under crashes (issue 11): no reply is ever dropped, and one
killed process never stops the node.

The load tests start the router, the write side and a read replica directly
(tests/support/service_node.py); the crash tests run the Procfile under honcho
(tests/e2e/test_procfile.py's Service), where every process is meant to be restarted by
common.keepalive.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from typing import Callable

import pytest

from common import store_url
from tests.e2e.test_procfile import Service
from tests.support import bus, envelope
from tests.support.dealer import Dealer
from tests.support.nodeproc import ROOT, VENV_BIN, alive, wait_until
from tests.support.service_node import probe, running_node
from write_side.store import read_events

Check = Callable[[dict], bool]


@pytest.fixture
def node(tmp_path):
    with running_node(tmp_path) as service:
        yield service


# ---- 1. no reply is ever dropped -------------------------------------------------------------

def mixed(prefix: str, count: int, first_msg_id: int = 1) -> tuple[list[dict], list[Check]]:
    """`count` requests of both dialects, commands and queries (and an unknown type), each
    with a check of its reply; the queries read what this client wrote just before."""
    requests: list[dict] = []
    checks: list[Check] = []
    uid = email = name = ""
    for i in range(count):
        m = first_msg_id + i
        step = i % 8
        if step == 0 or not uid:
            uid, name = f"{prefix}-{i}", f"N{i}"
            requests.append(envelope.create(uid, name, msg_id=m))
            checks.append(_equal({"type": "command_result", "in_reply_to": m, "success": True,
                                  "events": [{"eventType": "UserCreated", "aggregateId": uid}]}))
        elif step in (1, 5):
            requests.append(envelope.get_user(uid, msg_id=m))
            checks.append(_equal({"type": "query_result", "in_reply_to": m,
                                  "data": {"id": uid, "name": name}}))
        elif step == 2:
            email, bus_name = f"{prefix}{i}@example.com", f"B{i}"
            requests.append(bus.create(bus_name, email, msg_id=m))
            checks.append(lambda r, m=m, n=bus_name: r.get("in_reply_to") == m
                          and r.get("success") is True
                          and r["events"][0]["payload"]["name"] == n)
        elif step == 3:
            bus_name = f"B{i - 1}"
            requests.append(bus.find_by_email(email, msg_id=m))
            checks.append(lambda r, m=m, n=bus_name: r.get("in_reply_to") == m
                          and r.get("type") == "query_result" and r["data"]["name"] == n)
        elif step == 4:
            name = f"N{i}r"
            requests.append(envelope.rename(uid, name, msg_id=m))
            checks.append(_equal({"type": "command_result", "in_reply_to": m, "success": True,
                                  "events": [{"eventType": "UserRenamed", "aggregateId": uid}]}))
        elif step == 6:
            requests.append(bus.get_user("user-123", msg_id=m))
            checks.append(_equal({"type": "query_result", "in_reply_to": m,
                                  "data": {"id": "user-123", "name": "John Doe"}}))
        else:
            requests.append({"type": "Frobnicate", "msg_id": m})
            checks.append(lambda r, m=m: (r.get("type"), r.get("in_reply_to"), r.get("code"))
                          == ("error", m, 10))
    return requests, checks


def _equal(expected: dict) -> Check:
    return lambda reply: reply == expected


def verify(requests: list[dict], checks: list[Check], replies: list[dict]) -> None:
    """One reply per request, in order (in_reply_to), each right; the first problems shown."""
    assert len(replies) == len(requests), f"{len(replies)} replies to {len(requests)} requests"
    order = [r.get("in_reply_to") for r in replies]
    expected_order = [r["msg_id"] for r in requests]
    if order != expected_order:
        first = next(i for i, (a, b) in enumerate(zip(order, expected_order)) if a != b)
        pytest.fail(f"replies out of order from #{first}: {order[first:first + 5]} where "
                    f"{expected_order[first:first + 5]} were expected")
    bad = [(q, r) for q, r, check in zip(requests, replies, checks) if not check(r)]
    codes = Counter(r.get("code") for r in replies if r.get("type") == "error")
    assert not bad, f"{len(bad)} wrong replies (error codes seen: {dict(codes)}), e.g.\n" + \
        "\n".join(f"{json.dumps(q)} -> {json.dumps(r)}" for q, r in bad[:5])


@pytest.mark.timeout(900)
def test_cqrs_client_gets_100000_replies_in_order(node, tmp_path):
    """`cqrs-client --connect EP < requests` with 100,000 mixed lines prints 100,000 replies,
    in request order, every one right, and exits 0."""
    requests, checks = mixed("hk", 100_000)
    data = "".join(json.dumps(r) + "\n" for r in requests).encode()
    started = time.monotonic()
    done = subprocess.run([os.path.join(VENV_BIN, "cqrs-client"), "--connect",
                           node.client_endpoint, "--timeout", "60"], input=data,
                          env=node.base_env, capture_output=True, timeout=800)
    took = time.monotonic() - started
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    assert done.returncode == 0, \
        f"cqrs-client exited {done.returncode} after {len(lines)} of {len(requests)} replies:" \
        f"\n{done.stderr.decode()[-1500:]}\n{node.logs()}"
    verify(requests, checks, [json.loads(line) for line in lines])
    print(f"100,000 requests through cqrs-client in {took:.1f} s")


@pytest.mark.timeout(600)
def test_dealer_writes_10000_before_reading(node):
    """A raw DEALER writes 10,000 mixed requests before it reads anything, then gets all
    10,000 replies, in order, every one right."""
    requests, checks = mixed("tk", 10_000)
    client = Dealer(node.client_endpoint, send_timeout=30)
    try:
        for i, request in enumerate(requests):
            try:
                client.send(request)
            except Exception as exc:  # zmq.Again after 30 s: the node stopped taking requests
                pytest.fail(f"request #{i} could not be sent within 30 s ({exc!r}): the node "
                            "stopped reading a client that has not read yet")
        replies = []
        for i in range(len(requests)):
            frames = client.recv_frames(60)
            assert frames is not None, f"reply #{i} of {len(requests)} never came\n{node.logs()}"
            replies.append(json.loads(frames[-1]))
    finally:
        client.close()
    verify(requests, checks, replies)
    router = node.stats()["router"]
    assert router.get("undeliverable") == 0, router


@pytest.mark.timeout(600)
def test_client_that_never_reads_stops_nobody_else(node):
    """One client writes 30,000 queries and does not read; meanwhile another client is served
    as usual. Then the first reads, and gets every one of its 30,000 replies, in order."""
    hog = Dealer(node.client_endpoint, send_timeout=30)
    try:
        before = node.stats()["router"]["replies"]
        hog_requests = [bus.get_user("user-123", msg_id=i) for i in range(1, 30_001)]
        hog.send(*hog_requests)
        # Once the router has answered them all, the unread replies wait somewhere between
        # the router and the hog (its pipe, the router's backlog): then another client comes.
        assert wait_until(lambda: node.stats()["router"]["replies"] >= before + 30_000, 120,
                          0.2), f"the router did not answer the 30,000 queries: {node.stats()}"
        requests, checks = mixed("nb", 400)
        other = Dealer(node.client_endpoint, send_timeout=30)
        try:
            started = time.monotonic()
            other.send(*requests)
            replies = [other.recv(30) for _ in requests]
            took = time.monotonic() - started
        finally:
            other.close()
        verify(requests, checks, replies)
        assert took < 10, f"the other client waited {took:.1f} s for 400 replies"

        got = []
        for i in range(len(hog_requests)):
            frames = hog.recv_frames(60)
            assert frames is not None, f"the reading-late client lost reply #{i}: " \
                f"{node.stats()['router']}"
            got.append(json.loads(frames[-1]).get("in_reply_to"))
        assert got == list(range(1, 30_001)), "the reading-late client's replies are out of order"
    finally:
        hog.close()
    assert node.stats()["router"].get("undeliverable") == 0


# ---- 6. one crash never stops the node --------------------------------------------------------

SERVE_AGAIN_WITHIN = 10.0  # seconds after a kill -9 (a few; generous for a 2-core machine)
MODULES = {"router": "router", "write": "write_side", "read": "read_side"}


@pytest.fixture
def procfile(tmp_path):
    """The Procfile under honcho with one read replica, ready; nothing left running after."""
    svc = Service(tmp_path, replicas=1)
    try:
        svc.wait_ready()
        yield svc
    finally:
        left = svc.stop()
    assert not left, f"processes left running: {left}"


def procfile_text() -> str:
    with open(os.path.join(ROOT, "Procfile")) as f:
        return f.read()


def serves_again(svc: Service, what: str, within: float = SERVE_AGAIN_WITHIN) -> float:
    """Poll with a fresh client (a command and a query) until the node serves; the seconds
    it took. Fails, saying why, if it does not within `within` seconds."""
    started = time.monotonic()
    problems: list[str | None] = []

    def served() -> bool:
        problems.append(probe(svc.client_endpoint, timeout=2.0))
        return problems[-1] is None

    ok = wait_until(served, within, 0.05)
    took = time.monotonic() - started
    if not ok:
        honcho = "honcho is still running" if svc.proc.poll() is None else \
            f"honcho exited with status {svc.proc.returncode}, so the whole node stopped"
        pytest.fail(f"the node did not serve again within {within:g} s after {what} "
                    f"({honcho}); last probe: {problems[-1]}\nProcfile:\n{procfile_text()}\n"
                    f"honcho output:\n{svc.log()[-3000:]}")
    return took


@pytest.mark.timeout(300)
@pytest.mark.parametrize("victim", ["router", "write", "read"])
def test_kill_9_of_any_process_and_the_node_serves_again(procfile, victim):
    """kill -9 of the router, the write side or the (only) read replica: keepalive restarts
    it and a fresh client is served again within a few seconds; honcho keeps running."""
    module = MODULES[victim]
    old = procfile.one_pid(module)
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: not alive(old), 10, 0.01)
    took = serves_again(procfile, f"kill -9 of the {victim} (pid {old})")
    assert procfile.proc.poll() is None, "honcho stopped"
    assert wait_until(lambda: procfile.pids(module) and old not in procfile.pids(module), 10), \
        f"no new {module} process: {procfile.pids(module)}"
    assert f"keepalive: {module} (pid {old}) exited" in procfile.log(), procfile.log()[-2000:]
    print(f"served again {took:.2f} s after kill -9 of the {victim}")
    # And once more, to see the restarted process is itself a working one.
    again = procfile.one_pid(module)
    os.kill(again, signal.SIGKILL)
    serves_again(procfile, f"a second kill -9 of the {victim} (pid {again})")


def commands_with_ids(tag: str) -> list[dict]:
    """Bus CreateUsers and envelope CreateUser/RenameUser pairs, each with a command id."""
    out = []
    for i in range(40):
        out.append(bus.create(f"R{i}", f"{tag}{i}@example.com", msg_id=1000 + i,
                              command_id=f"{tag}-bus-{i}"))
    for i in range(40):
        out.append(envelope.create(f"{tag}-{i}", f"A{i}", msg_id=2000 + i,
                                   commandId=f"{tag}-create-{i}"))
        out.append(envelope.rename(f"{tag}-{i}", f"A{i}b", msg_id=3000 + i,
                                   commandId=f"{tag}-rename-{i}"))
    return out


def stored_emails(svc: Service, tag: str) -> Counter:
    """UserCreated events per email of this tag in the directory context of the store."""
    events = read_events(store_url.resolve("", str(svc.data_dir), ""))
    return Counter(e["data"].get("email") for e in events
                   if e["context"] == "directory" and e["type"] == "UserCreated"
                   and str(e["data"].get("email", "")).startswith(tag))


@pytest.mark.timeout(300)
def test_router_killed_with_requests_in_flight_then_retried_by_command_id(procfile):
    """Commands in flight at a router killed with -9 get no reply (the client times out);
    the client retries them with the same command ids once the node is back, and each is
    executed once: every user exists once, with the right versions."""
    tag = f"inflight{os.getpid()}"
    commands = commands_with_ids(tag)
    router, writer = procfile.one_pid("router"), procfile.one_pid("write_side")
    client = Dealer(procfile.client_endpoint, send_timeout=10)
    try:
        # Hold the write side, so the commands are surely in the router, unanswered.
        os.kill(writer, signal.SIGSTOP)
        try:
            client.send(*commands)
            assert wait_until(lambda: procfile.stats()["router"]["pending"] >= len(commands),
                              15, 0.05), procfile.stats()["router"]
            os.kill(router, signal.SIGKILL)
            assert wait_until(lambda: not alive(router), 10, 0.01)
        finally:
            os.kill(writer, signal.SIGCONT)
        lost = client.recv_frames(8.0)
        assert lost is None, f"a reply came for a request in flight at the killed router: {lost}"
        serves_again(procfile, f"kill -9 of the router (pid {router})", 20.0)
        stored = stored_emails(procfile, tag)
        print(f"{sum(stored.values())} of 40 bus commands were stored before the retry")

        for attempt in (1, 2):  # a retry, and a retry of the retry: the same outcome
            client.send(*commands)
            replies = [client.recv(30) for _ in commands]
            assert [r.get("in_reply_to") for r in replies] == [c["msg_id"] for c in commands]
            failed = [r for r in replies if r.get("success") is not True]
            assert not failed, f"retry {attempt}: {len(failed)} commands failed, e.g. {failed[:3]}"
            ids = [r["events"][0]["payload"]["id"] for r in replies[:40]]
            if attempt == 1:
                first_ids = ids
            assert ids == first_ids, f"retry {attempt} created other users: {ids} {first_ids}"
    finally:
        client.close()

    emails = stored_emails(procfile, tag)
    assert emails == Counter({f"{tag}{i}@example.com": 1 for i in range(40)}), \
        f"directory users not stored exactly once each: {emails}"
    events = read_events(store_url.resolve("", str(procfile.data_dir), ""))
    streams = Counter(e["stream_id"] for e in events if e["context"] == "accounts"
                      and e["stream_id"].startswith(tag + "-"))
    assert streams == Counter({f"{tag}-{i}": 2 for i in range(40)}), \
        f"accounts streams without exactly their two events: {streams}"
    for i in (0, 17, 39):
        history = procfile.ask(envelope.history(f"{tag}-{i}"))["data"]
        assert [(e["eventType"], e["version"], e["data"]) for e in history] == \
            [("UserCreated", 1, {"name": f"A{i}"}), ("UserRenamed", 2, {"name": f"A{i}b"})], \
            history
    directory = procfile.ask(bus.list_users(limit=1000))["data"]
    assert sorted(u["id"] for u in directory if u["name"].startswith("R")) == sorted(first_ids)
