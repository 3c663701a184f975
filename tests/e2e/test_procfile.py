"""Service mode end to end: the Procfile under honcho, clients on CQRS_CLIENT_ENDPOINT.

The router, the write side and two read replicas run as separate processes
(the back-ends under common.keepalive), talking over loopback TCP on free ports
and storing in a data folder of the test's own.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from collections import Counter
import threading
import time
from typing import Callable

import pytest
import zmq

from common import store_url
from tests.support import bus, envelope
from tests.support.dealer import Dealer
from tests.support.formats import CANONICAL_TIME, UUID
from tests.support.nodeproc import (ROOT, VENV_BIN, alive, cmdline, descendants, kill_leftovers,
                                    wait_until)
from tests.support.service import role_endpoints, service_env, start_module
from tests.support.stats import processes, stats
from write_side.store import read_events


# ---- processes ----------------------------------------------------------------------------

class Service:
    """The Procfile under honcho, on free ports, with a data folder; its output in a file."""

    def __init__(self, tmp_path, replicas: int = 2) -> None:
        self.tmp_path = tmp_path
        self.replicas = replicas
        self.endpoints = role_endpoints()
        self.data_dir = tmp_path / "data"
        self.env = service_env(self.endpoints, self.data_dir)
        self.client_endpoint = self.endpoints["CLIENT"]
        self.log_path = tmp_path / "honcho.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [os.path.join(VENV_BIN, "honcho"), "-d", ROOT, "-f", os.path.join(ROOT, "Procfile"),
             "start", "-c", f"read={replicas}"],
            env=self.env, cwd=tmp_path, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.extra: list[subprocess.Popen] = []  # processes started by hand
        self.seen: set[int] = set()
        self.probe = Dealer(self.client_endpoint)
        self.msg_id = 10_000_000

    # -- what runs -------------------------------------------------------------------------
    def processes(self) -> set[int]:
        found = descendants(self.proc.pid)
        for extra in self.extra:
            found |= {extra.pid} | descendants(extra.pid)
        self.seen |= found
        return found

    def pids(self, module: str) -> list[int]:
        """Live pids running `python -m <module>` itself (not a wrapper naming it)."""
        return sorted(pid for pid in self.processes()
                      if cmdline(pid)[1:3] == [b"-m", module.encode()] and alive(pid))

    def one_pid(self, module: str) -> int:
        assert wait_until(lambda: len(self.pids(module)) >= 1, 20), f"no {module} process"
        return self.pids(module)[0]

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    # -- talking to it ---------------------------------------------------------------------
    def next_id(self) -> int:
        self.msg_id += 1
        return self.msg_id

    def ask(self, body: dict, timeout: float = 15.0) -> dict:
        return self.probe.request({**body, "msg_id": self.next_id()}, timeout)

    def stats(self) -> dict:
        return stats(self.probe, self.next_id(), 15.0)

    def ready_reads(self) -> dict[int, dict]:
        return {pid: p for pid, p in processes(self.probe, "read", self.next_id(), 15.0).items()
                if p["ready"]}

    def wait_ready(self, reads: int | None = None, timeout: float = 60.0) -> None:
        """A GetUser query is answered, then the write side and `reads` replicas are ready."""
        reads = self.replicas if reads is None else reads
        deadline = time.monotonic() + timeout

        def answered() -> bool:
            assert self.proc.poll() is None, "honcho exited:\n" + self.log()[-3000:]
            return self.probe.serves(self.next_id(), 7)

        assert wait_until(answered, timeout, 0), "no query answered:\n" + self.log()[-3000:]

        def all_up() -> bool:
            procs = self.stats()["processes"]
            return (any(p["role"] == "write" and p["ready"] for p in procs)
                    and sum(p["role"] == "read" and p["ready"] for p in procs) >= reads)

        assert wait_until(all_up, max(1.0, deadline - time.monotonic()), 0.2), self.stats()

    def start_replica(self) -> subprocess.Popen:
        """One more read replica, by hand (not under honcho), with the same environment."""
        proc = start_module("read_side", self.env, self.tmp_path,
                            self.tmp_path / f"replica-{len(self.extra)}.err")
        self.extra.append(proc)
        return proc

    def stream_counts(self) -> dict[tuple[str, str], int]:
        """Events per (context, stream), read through the store interface (read-only)."""
        events = read_events(store_url.resolve("", str(self.data_dir), ""))
        return dict(Counter((e["context"], e["stream_id"]) for e in events))

    # -- stopping --------------------------------------------------------------------------
    def stop(self) -> list[int]:
        """Stop everything; return the pids still alive afterwards (killed, but reported)."""
        self.processes()
        self.probe.close()
        for extra in self.extra:
            if extra.poll() is None:
                extra.terminate()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for extra in self.extra:
            try:
                extra.wait(10)
            except subprocess.TimeoutExpired:
                extra.kill()
                extra.wait()
        left = kill_leftovers(self.seen, 10)
        self._log.close()
        return left


@pytest.fixture
def service(tmp_path):
    """A ready node: the Procfile with two read replicas; torn down with nothing left over."""
    svc = Service(tmp_path)
    try:
        svc.wait_ready()
        yield svc
    finally:
        left = svc.stop()
        assert not left, f"processes left running: {left}"


# ---- request scripts ----------------------------------------------------------------------

Check = Callable[[dict, list], None]  # (reply, this client's earlier replies) -> asserts


class Script:
    """One client's mixed requests (both dialects) over ids of its own, each with a check of
    its reply computed from a model of that client's writes."""

    def __init__(self, prefix: str, count: int, first_msg_id: int = 1) -> None:
        self.prefix = prefix
        self.rng = random.Random(prefix)
        self.requests: list[dict] = []
        self.checks: list[Check] = []
        self.accounts: dict[str, list[tuple[str, dict]]] = {}  # id -> events (type, data)
        self.deleted: set[str] = set()
        self.bus: list[tuple[int, str, str]] = []  # (request index, email, name)
        self.next_msg_id = first_msg_id
        while len(self.requests) < count:
            self._one()

    def live_accounts(self) -> dict[str, str]:
        return {uid: events[-1][1]["name"] for uid, events in self.accounts.items()
                if uid not in self.deleted}

    def _add(self, request: dict, check: Check) -> None:
        self.requests.append(request)
        self.checks.append(check)

    def _one(self) -> None:
        m = self.next_msg_id
        self.next_msg_id += 1
        roll = self.rng.random()
        live = sorted(self.live_accounts())
        if roll < 0.14 or not live:
            self._env_create(m)
        elif roll < 0.28:
            self._env_rename(m, self.rng.choice(live))
        elif roll < 0.31:
            self._env_delete(m, self.rng.choice(live))
        elif roll < 0.45:
            self._env_get(m, self.rng.choice(sorted(self.accounts)))
        elif roll < 0.53:
            self._env_history(m, self.rng.choice(sorted(self.accounts)))
        elif roll < 0.57:
            self._env_list(m)
        elif roll < 0.69 or not self.bus:
            self._bus_create(m)
        elif roll < 0.82:
            self._bus_find(m)
        elif roll < 0.86:
            self._bus_list(m)
        elif roll < 0.90:
            self._bus_refused(m)
        elif roll < 0.95:
            self._add(envelope.get_user("user-123", msg_id=m), expect_equal(
                {"type": "query_result", "in_reply_to": m,
                 "data": {"id": "user-123", "name": "John"}}))
        else:
            self._add({"type": "NoSuchThing", "msg_id": m}, expect_error(m, 10))

    # envelope dialect, `accounts` context
    def _env_create(self, m: int) -> None:
        uid = f"{self.prefix}-{len(self.accounts) + 1}"
        name = f"{self.prefix.upper()}{len(self.accounts) + 1}"
        self.accounts[uid] = [("UserCreated", {"name": name})]
        self._add(envelope.create(uid, name, msg_id=m),
                  expect_events(m, [{"eventType": "UserCreated", "aggregateId": uid}]))

    def _env_rename(self, m: int, uid: str) -> None:
        name = f"{uid}-v{len(self.accounts[uid]) + 1}"
        extra = {"expectedVersion": len(self.accounts[uid])} if self.rng.random() < 0.5 else {}
        self.accounts[uid].append(("UserRenamed", {"name": name}))
        self._add(envelope.rename(uid, name, msg_id=m, **extra),
                  expect_events(m, [{"eventType": "UserRenamed", "aggregateId": uid}]))

    def _env_delete(self, m: int, uid: str) -> None:
        self.accounts[uid].append(("UserDeleted", {}))
        self.deleted.add(uid)
        self._add(envelope.delete(uid, msg_id=m),
                  expect_events(m, [{"eventType": "UserDeleted", "aggregateId": uid}]))

    def _env_get(self, m: int, uid: str) -> None:
        data = None if uid in self.deleted else {"id": uid, "name": self.live_accounts()[uid]}
        self._add(envelope.get_user(uid, msg_id=m),
                  expect_equal({"type": "query_result", "in_reply_to": m, "data": data}))

    def _env_history(self, m: int, uid: str) -> None:
        self._add(envelope.history(uid, msg_id=m),
                  expect_history(m, list(self.accounts[uid])))

    def _env_list(self, m: int) -> None:
        mine = [{"id": uid, "name": name} for uid, name in self.live_accounts().items()]
        self._add(envelope.list_users(msg_id=m, limit=1000), expect_own_listed(m, mine,
                                                                                self.prefix))

    # bus dialect, `directory` context
    def _bus_create(self, m: int) -> None:
        n = len(self.bus) + 1
        email, name = f"{self.prefix}{n}@example.com", f"{self.prefix.upper()}-bus-{n}"
        self.bus.append((len(self.requests), email, name))
        self._add({"type": "CreateUser", "msg_id": m, "payload": {"name": name, "email": email}},
                  expect_bus_created(m, name))

    def _bus_find(self, m: int) -> None:
        index, email, name = self.rng.choice(self.bus)

        def check(reply: dict, earlier: list) -> None:
            expected = {"id": bus.created_id(earlier[index]), "name": name}
            assert reply == {"type": "query_result", "in_reply_to": m, "data": expected}, reply

        self._add({"type": "FindUserByEmail", "msg_id": m,
                   "params": {"email": email}}, check)

    def _bus_list(self, m: int) -> None:
        created = list(self.bus)
        marker = f"{self.prefix.upper()}-bus-"

        def check(reply: dict, earlier: list) -> None:
            assert reply["type"] == "query_result" and reply["in_reply_to"] == m, reply
            mine = [u for u in reply["data"] if u["name"].startswith(marker)]
            assert mine == [{"id": bus.created_id(earlier[i]), "name": name}
                            for i, _email, name in created], reply

        self._add({"type": "ListUsers", "msg_id": m, "params": {"limit": 1000}}, check)

    def _bus_refused(self, m: int) -> None:
        """A command that must fail: an email this client registered, or none at all."""
        if self.bus and self.rng.random() < 0.5:
            _index, email, _name = self.rng.choice(self.bus)
            payload, errors = {"name": "Dup", "email": email}, ["Email is already registered"]
        else:
            payload, errors = {"name": "NoMail"}, ["Email is required"]
        self._add({"type": "CreateUser", "msg_id": m, "payload": payload}, expect_equal(
            {"type": "command_result", "in_reply_to": m, "success": False, "errors": errors}))


def expect_equal(expected: dict) -> Check:
    def check(reply: dict, _earlier: list) -> None:
        assert reply == expected, reply
    return check


def expect_error(m: int, code: int) -> Check:
    def check(reply: dict, _earlier: list) -> None:
        assert reply["type"] == "error" and (reply["in_reply_to"], reply["code"]) == (m, code), \
            reply
    return check


def expect_events(m: int, events: list[dict]) -> Check:
    return expect_equal({"type": "command_result", "in_reply_to": m, "success": True,
                         "events": events})


def expect_bus_created(m: int, name: str) -> Check:
    def check(reply: dict, _earlier: list) -> None:
        assert reply["type"] == "command_result" and reply["success"] is True, reply
        assert reply["in_reply_to"] == m, reply
        [event] = reply["events"]
        assert event["type"] == "UserCreated" and event["payload"]["name"] == name, reply
        assert UUID.fullmatch(event["payload"]["id"]), reply
    return check


def expect_history(m: int, events: list[tuple[str, dict]]) -> Check:
    def check(reply: dict, _earlier: list) -> None:
        assert reply["type"] == "query_result" and reply["in_reply_to"] == m, reply
        got = [(e["eventType"], e["version"], e["data"]) for e in reply["data"]]
        assert got == [(t, v, d) for v, (t, d) in enumerate(events, 1)], reply
        assert all(CANONICAL_TIME.fullmatch(e["recordedAt"]) for e in reply["data"]), reply
    return check


def expect_own_listed(m: int, mine: list[dict], prefix: str) -> Check:
    def check(reply: dict, _earlier: list) -> None:
        assert reply["type"] == "query_result" and reply["in_reply_to"] == m, reply
        assert [u for u in reply["data"] if u["id"].startswith(prefix + "-")] == mine, reply
    return check


def verify(script: Script, replies: list[dict]) -> list[str]:
    """Every reply, in order, against its request's check; the failures as text."""
    failures = []
    if len(replies) != len(script.requests):
        failures.append(f"{len(replies)} replies to {len(script.requests)} requests")
    for i, (request, reply) in enumerate(zip(script.requests, replies)):
        try:
            assert reply.get("in_reply_to") == request["msg_id"], "out of order"
            script.checks[i](reply, replies[:i])
        except (AssertionError, KeyError, IndexError, TypeError) as exc:
            failures.append(f"#{i} {json.dumps(request)} -> {json.dumps(reply)}: {exc}")
    return failures


class CliClient:
    """A `cqrs-client` subprocess fed through a stdin pipe; its reply lines read by a thread."""

    def __init__(self, endpoint: str, env: dict, err_path) -> None:
        self.err_path = err_path
        with open(err_path, "wb") as err:
            self.proc = subprocess.Popen([os.path.join(VENV_BIN, "cqrs-client"), "--connect",
                                          endpoint, "--timeout", "30"], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def feed(self, requests: list[dict]) -> None:
        self.proc.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        self.proc.stdin.flush()

    def finish(self, timeout: float = 90.0) -> tuple[int, list[dict], str]:
        self.proc.stdin.close()
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        self._reader.join(10)
        return status, [json.loads(line) for line in self.lines], self.err_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- tests --------------------------------------------------------------------------------

def test_procfile_two_clients_replica_killed_and_added(service, tmp_path):
    """1,000 mixed requests from two cqrs-client processes at once, while one replica is
    killed (keepalive restarts it) and a third replica is started by hand."""
    scripts = [Script("a", 500), Script("b", 500)]
    clients = [CliClient(service.client_endpoint, service.env, tmp_path / f"client-{s.prefix}.err")
               for s in scripts]
    try:
        cuts = (0, 200, 350, 500)
        for client, script in zip(clients, scripts):
            client.feed(script.requests[cuts[0]:cuts[1]])
        assert wait_until(lambda: all(len(c.lines) >= 50 for c in clients), 30), \
            [len(c.lines) for c in clients]

        readers = service.pids("read_side")
        assert len(readers) == 2, readers
        victim = readers[0]
        os.kill(victim, signal.SIGKILL)
        for client, script in zip(clients, scripts):
            client.feed(script.requests[cuts[1]:cuts[2]])

        third = service.start_replica()
        assert wait_until(lambda: third.pid in service.ready_reads(), 30, 0.2), \
            (service.stats(), (tmp_path / "replica-0.err").read_text())
        for client, script in zip(clients, scripts):
            client.feed(script.requests[cuts[2]:cuts[3]])

        results = [client.finish() for client in clients]
    finally:
        for client in clients:
            client.kill()

    for script, (status, replies, err) in zip(scripts, results):
        assert status == 0, err
        failures = verify(script, replies)
        assert not failures, f"client {script.prefix}: {len(failures)} bad replies:\n" + \
            "\n".join(failures[:5])

    # The killed replica came back under its keepalive wrapper; the hand-started one serves.
    assert f"keepalive: read_side (pid {victim}) exited" in service.log()
    assert wait_until(lambda: len(service.pids("read_side")) == 3 and victim not in
                      service.pids("read_side"), 20), service.pids("read_side")
    assert wait_until(lambda: len(service.ready_reads()) == 3, 20, 0.2), service.stats()

    def third_served() -> bool:
        # The clients may have finished before the third replica got a share: keep
        # querying (round-robin over the ready replicas) until its counter shows one.
        service.ask({"type": "query", "query": {"type": "GetUser",
                                                "params": {"userId": "user-123"}}})
        return service.ready_reads().get(third.pid, {}).get("counters", {}).get("queries", 0) > 0

    assert wait_until(third_served, 10, 0.2), service.stats()
    check_final_state(service, scripts)


def check_final_state(service: Service, scripts: list[Script]) -> None:
    """Lists, histories and the store agree with what the clients wrote."""
    accounts = service.ask({"type": "query", "query": {"type": "ListUsers",
                                                       "params": {"limit": 1000}}})["data"]
    expected = {"user-123": "John"}
    for script in scripts:
        expected.update(script.live_accounts())
    assert {u["id"]: u["name"] for u in accounts} == expected
    assert len(accounts) == len(expected)

    directory = service.ask({"type": "ListUsers", "params": {"limit": 1000}})["data"]
    assert len(directory) == 1 + sum(len(s.bus) for s in scripts)
    for script in scripts:
        for uid, events in script.accounts.items():
            reply = service.ask({"type": "query", "query": {"type": "GetUserHistory",
                                                            "params": {"userId": uid}}})
            expect_history(reply["in_reply_to"], events)(reply, [])

    counts = service.stream_counts()
    for script in scripts:
        for uid, events in script.accounts.items():
            assert counts[("accounts", uid)] == len(events), uid
    assert sum(n for (context, _), n in counts.items() if context == "directory") == \
        1 + sum(len(s.bus) for s in scripts)


def test_dealer_gets_byte_exact_replies(service):
    """A plain DEALER gets exactly the text PROTOCOL.md shows, one frame per reply."""
    client = Dealer(service.client_endpoint)
    try:
        exchanges = [
            ({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]},
             b'{"type": "init_ok", "in_reply_to": 1}'),
            ({"type": "GetUser", "msg_id": 3, "params": {"user_id": "user-123"}},
             b'{"type": "query_result", "in_reply_to": 3, "data": {"id": "user-123", '
             b'"name": "John Doe"}}'),
            ({"src": "c1", "dest": "n1", "body": {"type": "query", "msg_id": 2, "query": {
                "type": "GetUser", "params": {"userId": "user-123"}}}},
             b'{"type": "query_result", "in_reply_to": 2, "data": {"id": "user-123", '
             b'"name": "John"}}'),
            ({"type": "query", "msg_id": 4, "query": {"type": "GetUserHistory",
                                                      "params": {"userId": "user-123"}}},
             b'{"type": "query_result", "in_reply_to": 4, "data": ['
             b'{"eventType": "UserCreated", "version": 1, "recordedAt": '
             b'"2024-01-01T00:00:00.000000Z", "data": {"name": "John"}}, '
             b'{"eventType": "UserRenamed", "version": 2, "recordedAt": '
             b'"2024-01-10T00:00:00.000000Z", "data": {"name": "John Doe"}}, '
             b'{"eventType": "UserRenamed", "version": 3, "recordedAt": '
             b'"2024-02-01T00:00:00.000000Z", "data": {"name": "John"}}]}'),
            ('{"type": "command", "msg_id": 5, "command": {"type": "CreateUser", "payload": '
             '{"id": "user-9", "name": "Zo\u00eb"}}}'.encode(),  # raw UTF-8 in, escapes out
             b'{"type": "command_result", "in_reply_to": 5, "success": true, "events": '
             b'[{"eventType": "UserCreated", "aggregateId": "user-9"}]}'),
            ({"type": "query", "msg_id": 6, "query": {"type": "GetUser",
                                                      "params": {"userId": "user-9"}}},
             b'{"type": "query_result", "in_reply_to": 6, "data": {"id": "user-9", '
             b'"name": "Zo\\u00eb"}}'),
            ({"type": "CreateUser", "msg_id": 7, "payload": {"name": "John"}},
             b'{"type": "command_result", "in_reply_to": 7, "success": false, '
             b'"errors": ["Email is required"]}'),
            ({"type": "GetUser", "msg_id": 8, "params": {"user_id": "nobody"}},
             b'{"type": "query_result", "in_reply_to": 8, "data": null}'),
        ]
        client.send(*(request for request, _ in exchanges))
        for request, expected in exchanges:
            frames = client.recv_frames(15)
            assert frames == [expected], (request, frames)

        # Errors: the fixed part of the text is exact; the wording of `text` is the node's.
        client.send({"type": "Frobnicate", "msg_id": 9}, b"not json at all")
        for prefix in (b'{"type": "error", "in_reply_to": 9, "code": 10, "text": "',
                       b'{"type": "error", "in_reply_to": null, "code": 12, "text": "'):
            [frame] = client.recv_frames(15)
            assert frame.startswith(prefix) and frame.endswith(b'"}'), frame
            assert not frame.endswith(b"\n"), frame
    finally:
        client.close()


def test_read_your_writes_per_client_with_two_clients(service):
    """Two DEALERs pipeline command/query pairs at once; each query sees its own command."""
    ctx = zmq.Context()
    rounds = 120
    failures: list[str] = []

    def run(prefix: str) -> None:
        client = Dealer(service.client_endpoint, ctx)
        uid = f"{prefix}-ryw"
        try:
            requests = []
            for i in range(rounds):  # a command, then at once a query of what it wrote
                m, name = 2 * i + 1, f"{prefix}-name-{i}"
                if i % 2 == 0:
                    kind = "CreateUser" if i == 0 else "RenameUser"
                    requests += [envelope.command(kind, {"id": uid, "name": name}, msg_id=m),
                                 envelope.get_user(uid, msg_id=m + 1)]
                else:
                    email = f"{prefix}{i}@example.com"
                    requests += [{"type": "CreateUser", "msg_id": m,
                                  "payload": {"name": name, "email": email}},
                                 {"type": "FindUserByEmail", "msg_id": m + 1,
                                  "params": {"email": email}}]
            client.send(*requests)
            replies = [client.recv(30) for _ in requests]
            for i in range(rounds):
                command, query = replies[2 * i], replies[2 * i + 1]
                assert command.get("success") is True, command
                written = uid if i % 2 == 0 else bus.created_id(command)
                assert query == {"type": "query_result", "in_reply_to": 2 * i + 2,
                                 "data": {"id": written, "name": f"{prefix}-name-{i}"}}, \
                    (requests[2 * i + 1], query)
        except AssertionError as exc:
            failures.append(f"client {prefix}: {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(p,)) for p in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ctx.term()
    assert not failures, "\n".join(failures[:5])


def kill_write_side_between(service: Service, client: Dealer, before: list[dict],
                            after: list[dict], hold: bool = False) -> list[dict]:
    """Send `before`, SIGKILL the write side's python process (not its keepalive wrapper),
    then, once it is gone, keep sending `after` in small paced chunks, as a steady client
    would while keepalive brings up the successor; every reply, in order.

    With hold, the write side is stopped (SIGSTOP) first, so that `before` is surely in flight,
    unprocessed, when it dies."""
    writer = service.one_pid("write_side")
    if hold:
        os.kill(writer, signal.SIGSTOP)
    client.send(*before)
    if hold:  # the router has read them (and handed them to the stopped write side)
        assert wait_until(lambda: service.stats()["router"]["pending"] >= len(before), 5, 0.01)
    os.kill(writer, signal.SIGKILL)
    assert wait_until(lambda: not alive(writer), 5, 0.005)
    for start in range(0, len(after), 10):
        client.send(*after[start:start + 10])
        time.sleep(0.02)  # pacing the client, not waiting for the node
    replies = [client.recv(20) for _ in before + after]
    assert [r.get("in_reply_to") for r in replies] == [r["msg_id"] for r in before + after]
    assert f"keepalive: write_side (pid {writer}) exited" in service.log()
    assert wait_until(lambda: service.pids("write_side") and writer not in
                      service.pids("write_side"), 10), "write side not restarted"
    return replies


def test_write_side_restart_while_client_waits(service):
    """Commands in flight when the write side dies complete once keepalive has restarted it
    on the same data folder, before their deadline, and none is applied twice."""
    client = Dealer(service.client_endpoint)
    try:
        accounts = [envelope.create(f"w-{i}", f"W{i}", msg_id=i)
                    for i in range(1, 151)]
        bus = [{"type": "CreateUser", "msg_id": 1000 + i,
                "payload": {"name": f"B{i}", "email": f"b{i}@example.com"}} for i in range(60)]
        replies = kill_write_side_between(service, client, accounts[:75] + bus[:30],
                                          accounts[75:] + bus[30:])
    finally:
        client.close()

    bad = [r for r in replies if r.get("success") is not True]
    assert not bad, f"{len(bad)} of {len(replies)} commands failed, e.g. {bad[:3]}"
    counts = service.stream_counts()
    written = {k: v for k, v in counts.items() if k[0] == "accounts" and k[1].startswith("w-")}
    assert written == {("accounts", f"w-{i}"): 1 for i in range(1, 151)}  # each stored once
    assert sum(v for k, v in counts.items() if k[0] == "directory") == 1 + len(bus)
    directory = service.ask({"type": "ListUsers", "params": {"limit": 1000}})["data"]
    assert sorted(u["name"] for u in directory) == sorted(["John Doe"] +
                                                          [f"B{i}" for i in range(60)])
    ids = {r["events"][0]["payload"]["id"] for r in replies if r["in_reply_to"] >= 1000}
    assert {u["id"] for u in directory} == ids | {"user-123"}


def test_write_side_restart_keeps_a_clients_command_order(service):
    """Renames sent after their creates, across a write-side restart, are applied after them."""
    client = Dealer(service.client_endpoint)
    try:
        creates = [envelope.create(f"o-{i}", f"O{i}", msg_id=i)
                   for i in range(1, 101)]
        renames = [envelope.rename(f"o-{i}", f"O{i}b", msg_id=1000 + i)
                   for i in range(1, 101)]
        replies = kill_write_side_between(service, client, creates, renames, hold=True)
    finally:
        client.close()

    bad = [r for r in replies if r.get("success") is not True]
    assert not bad, f"{len(bad)} of {len(replies)} commands failed, e.g. {bad[:3]}"
    for i in (1, 50, 100):
        history = service.ask({"type": "query", "query": {"type": "GetUserHistory",
                                                          "params": {"userId": f"o-{i}"}}})
        assert [(e["eventType"], e["data"]) for e in history["data"]] == \
            [("UserCreated", {"name": f"O{i}"}), ("UserRenamed", {"name": f"O{i}b"})]
    counts = service.stream_counts()
    assert all(counts[("accounts", f"o-{i}")] == 2 for i in range(1, 101)), counts
