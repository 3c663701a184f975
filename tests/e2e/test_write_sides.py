"""Several write sides on one PostgreSQL store (issue 15): the same answers as one write
side, failover at once, nothing lost or doubled, and a SQLite store keeps exactly one.

The differential tests drive run_node.py over stdin (one session) with the same input on
a one-write-side node and on nodes with 2 and 3 write sides (one with write sides killed
with SIGKILL mid-burst): the replies, and the events stored, must be equal once the
UUIDs the nodes make and the times they record are normalised. The race tests run the
processes in service mode with concurrent clients writing the same streams and claiming
the same emails, and check what the database arbitrated. Every run ends with the read
side's projections compared with a fold of the store.
"""
from __future__ import annotations

import itertools
import json
import os
import queue
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common import command_ids
from common.jsontext import dumps
from read_side.contexts import load_all as read_projections
from tests.support.dealer import Dealer
from tests.support.nodeproc import Node, alive, cmdline, run_lines, wait_until
from tests.support.normalise import PLACEHOLDER, Normaliser
from tests.support.ports import free_ports
from tests.support.service import role_endpoints, service_env, start_module, stop_processes
from tests.support.service_node import probe
from tests.support.stats import stats
from write_side.store import open_store, read_events




# ---- a SQLite store keeps exactly one write side ---------------------------------------------

def test_several_write_sides_on_a_sqlite_store_is_a_usage_error(tmp_path):
    started = time.monotonic()
    out, status, err = run_lines([], "--write-sides", "2", "--data-dir", str(tmp_path))
    assert status == 2 and out == []
    assert "--write-sides 2 (CQRS_WRITE_SIDES)" in err and "has one writer" in err, err
    assert "events endpoint:" not in err, "the launcher went on after the usage error"
    assert not (tmp_path / "events.sqlite3").exists()
    assert time.monotonic() - started < 30


def test_a_write_side_told_there_are_several_refuses_a_sqlite_store(tmp_path):
    """In service mode too: CQRS_WRITE_SIDES=2 beside a SQLite store is refused by the write
    side itself, before it opens the store (a second one would be refused by its lock)."""
    env = {**service_env(role_endpoints(), tmp_path / "data"), "CQRS_WRITE_SIDES": "2"}
    proc = start_module("write_side", env, tmp_path, tmp_path / "write.err")
    try:
        assert proc.wait(30) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
    err = (tmp_path / "write.err").read_text()
    assert "has one writer" in err, err
    assert not (tmp_path / "data" / "events.sqlite3").exists()


# ---- the input of the differential runs ------------------------------------------------------

EMAILS = [f"shared{i}@example.com" for i in range(6)]
ACCOUNTS = [f"acc-{i}" for i in range(8)]


class Script:
    """One session's input, in rounds: each later round may name the users the node made
    in the rounds before it, as <idN> (the Normaliser's numbering of the ids in the replies,
    filled in per run). Every command has a client command id; some are sent again with
    the same id, and must get the stored answer."""

    def __init__(self, seed: int, size: int) -> None:
        self.rng = random.Random(seed)
        self.size = size
        self.msg_ids = itertools.count(1)
        self.command_ids = itertools.count(1)
        self.sent_commands: list[dict] = []
        self.rounds: list[list[str]] = []

    def round(self, known_ids: int) -> list[str]:
        """The next round's request templates (two rounds of requests, then the probes);
        built once, from the first run's replies (`known_ids`: how many <idN> they hold),
        then the same for every run."""
        if len(self.rounds) == 2:
            lines = self._probes(known_ids)
        else:
            lines = [self._line(known_ids) for _ in range(self.size)]
        self.rounds.append(lines)
        return lines

    def _command(self, body: dict, command_id_in: str) -> dict:
        cid = f"cid-{next(self.command_ids)}"
        if command_id_in == "top":
            body["command_id"] = cid
        else:
            body["command"]["commandId"] = cid
        self.sent_commands.append(body)
        return body

    def _line(self, known_ids: int) -> str:
        rng, m = self.rng, next(self.msg_ids)
        roll = rng.random()
        user = f"<id{rng.randint(1, known_ids)}>" if known_ids else None
        acc = rng.choice(ACCOUNTS)
        # Half the emails are shared ones, raced for; the rest register new users.
        email = rng.choice(EMAILS) if rng.random() < 0.5 else f"own{m}@example.com"
        if rng.random() < 0.2:
            email = email.upper()  # claims ignore case: still the same email
        if roll < 0.05 and self.sent_commands:  # a command sent again: its stored answer
            return json.dumps({**rng.choice(self.sent_commands), "msg_id": m})
        if roll < 0.18:
            body = {"type": "command", "command": {"type": "CreateUser", "payload": {
                "id": acc, "name": rng.choice(["Ann", "Bob"])}}}
        elif roll < 0.32:
            body = {"type": "command", "command": {"type": "RenameUser", "payload": {
                "id": acc, "name": f"R{m}"}}}
            if rng.random() < 0.3:
                body["command"]["expectedVersion"] = rng.randint(0, 4)
        elif roll < 0.36:
            body = {"type": "command", "command": {"type": "DeleteUser", "payload": {"id": acc}}}
        elif roll < 0.52:
            body = {"type": "CreateUser", "payload": {"name": f"B{m}", "email": email}}
            if rng.random() < 0.1:
                body["payload"]["age"] = rng.choice([17, 30])
            return json.dumps(self._command({**body, "msg_id": m}, "top"))
        elif user and roll < 0.62:
            body = {"type": "ChangeEmail", "payload": {"id": user, "email": email}}
            return json.dumps(self._command({**body, "msg_id": m}, "top"))
        elif user and roll < 0.70:
            body = {"type": "RenameUser", "payload": {"id": user, "name": f"N{m}"}}
            return json.dumps(self._command({**body, "msg_id": m}, "top"))
        elif user and roll < 0.73:
            body = {"type": "DeactivateUser", "payload": {"id": user}}
            return json.dumps(self._command({**body, "msg_id": m}, "top"))
        else:
            return json.dumps(self._query(m, acc, user, email))
        return json.dumps(self._command({**body, "msg_id": m}, "inside"))

    def _query(self, m: int, acc: str, user: str | None, email: str) -> dict:
        pick = self.rng.randrange(5)
        if pick == 0:
            return {"type": "query", "msg_id": m, "query": {"type": "GetUser",
                                                           "params": {"userId": acc}}}
        if pick == 1:
            return {"type": "query", "msg_id": m, "query": {"type": "GetUserHistory",
                                                           "params": {"userId": acc}}}
        if pick == 2 and user:
            return {"type": "GetUser", "msg_id": m, "params": {"user_id": user}}
        if pick == 3:
            return {"type": "FindUserByEmail", "msg_id": m, "params": {"email": email}}
        return {"type": "ListUsers", "msg_id": m, "params": {"limit": 1000}}

    def _probes(self, known_ids: int) -> list[str]:
        """Queries over everything written, each also answered from a fold of the store."""
        m = self.msg_ids
        lines: list[dict] = [
            {"type": "ListUsers", "msg_id": next(m), "params": {"limit": 1000}},
            {"type": "query", "msg_id": next(m), "query": {"type": "ListUsers",
                                                          "params": {"limit": 1000}}}]
        for acc in ACCOUNTS:
            for name in ("GetUser", "GetUserHistory"):
                lines.append({"type": "query", "msg_id": next(m),
                              "query": {"type": name, "params": {"userId": acc}}})
        for i in range(1, known_ids + 1):
            lines.append({"type": "GetUser", "msg_id": next(m), "params": {"user_id": f"<id{i}>"}})
        for email in EMAILS:
            lines.append({"type": "FindUserByEmail", "msg_id": next(m), "params": {"email": email}})
        return [json.dumps(line) for line in lines]


# ---- runs ---------------------------------------------------------------------------------

@dataclass
class Run:
    requests: list[dict] = field(default_factory=list)  # as sent, <idN> filled in
    replies: list[str] = field(default_factory=list)  # normalised
    raw: list[dict] = field(default_factory=list)
    store: list[str] = field(default_factory=list)    # the stored events, normalised
    killed: list[int] = field(default_factory=list)
    stderr: str = ""


def write_side_pids(node: Node) -> list[int]:
    return sorted(pid for pid in node.children() if cmdline(pid)[1:3] == [b"-m", b"write_side"]
                  and alive(pid))


def bytes_read(pid: int) -> int:
    """All the bytes the process has read so far, sockets included (/proc/PID/io)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))
    except (OSError, StopIteration):
        return 0


def busiest(pids: list[int]) -> int:
    """The write side working on commands now: the one whose reads (commands from the
    router, rows from the database) grow fastest, watched until one clearly leads, so a
    kill hits commands in flight rather than an idle process."""
    lead: list[int] = []

    def one_leads() -> bool:
        before = {pid: bytes_read(pid) for pid in pids}
        time.sleep(0.02)  # a sampling window, not a wait for something to happen
        grown = sorted(((bytes_read(pid) - before[pid], pid) for pid in pids), reverse=True)
        lead[:] = [grown[0][1]]
        return grown[0][0] > 2 * max(grown[1][0], 1000)

    wait_until(one_leads, 5, 0)
    return lead[0]


def kill_the_holder(node: Node, stopped: list[int]) -> int:
    """Of these stopped write sides, kill (SIGKILL) one at a time until the router reports
    one lost with commands on it, and let the rest go on (SIGCONT); that one's pid. A write
    side killed on the way held nothing: the supervisor starts it again."""
    holder = stopped[-1]
    for pid in stopped:
        os.kill(pid, signal.SIGKILL)
        lost = rf"write side pid {pid} lost; re-sending (\d+) requests"
        assert wait_until(lambda: re.search(lost, node.stderr()), 20), node.stderr()[-3000:]
        if int(re.search(lost, node.stderr()).group(1)) > 0:
            holder = pid
            break
    for pid in stopped:
        if pid != holder and alive(pid):
            os.kill(pid, signal.SIGCONT)
    return holder


def run_script(script: Script, url: str, *args: str, write_sides: int = 1,
               kill_busiest_at: int | None = None, stop_then_kill: bool = False) -> Run:
    """The script's rounds through a fresh node on `url`.

    kill_busiest_at: after this many replies of the first round, SIGKILL the write side
    busiest then (it may or may not hold unanswered commands at that instant).
    stop_then_kill: for the second round, the write sides are stopped (SIGSTOP) before the
    round is sent, so the session's commands pile up, unanswered, on the one that takes
    them (a session's commands stay on one write side while any is unanswered); once the
    replies stall, that one is found and killed (SIGKILL), with commands certainly in
    flight, and the others go on."""
    node = Node("--store", url, "--no-sample-data", "--write-sides", str(write_sides), *args)
    normalise = Normaliser()
    result = Run()
    requests = result.requests
    try:
        assert wait_until(lambda: len(write_side_pids(node)) == write_sides, 20)
        for index in range(3):
            known = len(normalise.ids)
            lines = script.rounds[index] if index < len(script.rounds) else script.round(known)
            named = max((int(n) for line in lines for n in PLACEHOLDER.findall(line)), default=0)
            assert known >= named, (f"before round {index + 1} this run made {known} users, "
                                    f"the first run {named} or more: the replies differ already")
            filled = [normalise.fill(line) for line in lines]
            requests += [json.loads(line) for line in filled]
            stopped: list[int] | None = None
            if index == 1 and stop_then_kill:
                stopped = write_side_pids(node)
                for pid in stopped:
                    os.kill(pid, signal.SIGSTOP)
            node.send(*filled)
            for _ in filled:
                if index == 0 and len(result.raw) == kill_busiest_at:
                    victim = busiest(write_side_pids(node))
                    os.kill(victim, signal.SIGKILL)
                    result.killed.append(victim)
                if stopped is not None:
                    try:
                        # Replies stop coming once the session's next command waits on the
                        # stopped write side: a second without one is that (a commit takes
                        # milliseconds), and it comes before the router would drop the
                        # write side for 2 s of silence, so it is the kill that hands its
                        # commands on (were it the silence, they would be handed on too).
                        line = node.lines.get(timeout=1.0)
                    except queue.Empty:
                        result.killed.append(kill_the_holder(node, stopped))
                        stopped = None
                        line = node.read_line(timeout=30)
                    if line is None:
                        raise EOFError("node closed stdout:\n" + node.stderr()[-3000:])
                else:
                    line = node.read_line(timeout=30)
                result.raw.append(json.loads(line))
                result.replies.append(normalise(line))
            if stopped is not None:  # never stalled: nothing of the round was held
                result.killed.append(kill_the_holder(node, stopped))
        node.close_stdin()
        assert node.wait(30) == 0, node.stderr()[-3000:]
        result.stderr = node.stderr()
    finally:
        node.stop()
    events = read_events(url)
    store_normalise = Normaliser()
    result.store = [store_normalise(json.dumps([e["context"], e["stream_id"], e["version"],
                                                e["type"], e["data"]])) for e in events]
    mismatches = fold_mismatches(events, requests[-len(script.rounds[2]):],
                                 result.raw[-len(script.rounds[2]):])
    assert not mismatches, "projections differ from a fold of the store:\n" + \
        "\n".join(mismatches[:10])
    return result


def fold_mismatches(events: list[dict], queries: list[dict], replies: list[dict]) -> list[str]:
    """The queries whose reply differs from the answer of projections built by applying
    every stored event in position order."""
    projections = read_projections()
    for event in events:
        projections[event["context"]].apply(event)
    problems = []
    for query, reply in zip(queries, replies):
        if query["type"] == "query":
            context, name, params = "accounts", query["query"]["type"], query["query"]["params"]
        else:
            context, name, params = "directory", query["type"], query["params"]
        expected = json.loads(dumps(projections[context].queries[name](params, None)))
        if reply.get("data") != expected:
            problems.append(f"{name} {params}: node {reply} != fold {expected}")
    return problems


@pytest.fixture(scope="module")
def script() -> Script:
    return Script(seed=15, size=300)


def new_url(postgres_cluster) -> str:
    return postgres_cluster.new_database()


@pytest.fixture(scope="module")
def reference(postgres_cluster, script) -> Run:
    """The script through one write side: what every other run must answer."""
    return run_script(script, new_url(postgres_cluster))


def test_the_script_holds_races_and_refusals(reference):
    """The input is worth comparing: it has refusals of every kind, not just successes."""
    refusals = Counter(e for r in reference.raw for e in r.get("errors", []))
    for refusal in ("Email is already registered", "already exists", "User not found",
                    "User is deleted", "User is deactivated"):
        assert any(refusal in e for e in refusals), f"no {refusal!r} among {refusals}"
    assert sum(r.get("success") is True for r in reference.raw) > 100
    assert not [r for r in reference.raw if r["type"] == "error"]


def test_one_write_side_on_postgresql_answers_as_on_sqlite(reference, script, tmp_path):
    sqlite = run_script(script, f"sqlite:///{tmp_path}/events.sqlite3")
    assert sqlite.replies == reference.replies
    assert sqlite.store == reference.store


@pytest.mark.parametrize("write_sides", [2, 3])
def test_several_write_sides_answer_as_one(reference, script, postgres_cluster, write_sides):
    run = run_script(script, new_url(postgres_cluster), write_sides=write_sides)
    assert_same(run, reference)


def test_write_sides_killed_mid_burst_lose_and_double_nothing(reference, script,
                                                              postgres_cluster):
    """Three write sides; the busiest killed with SIGKILL a third of the way through the
    first burst, another stopped then killed with commands waiting on it in the second:
    their unanswered commands go to the others at once, each runs exactly once (by its
    command id), and every reply and every stored event is as with one write side."""
    url = new_url(postgres_cluster)
    run = run_script(script, url, write_sides=3, kill_busiest_at=len(script.rounds[0]) // 3,
                     stop_then_kill=True)
    assert len(run.killed) == 2
    # The router handed the stopped write side's unanswered commands to the others at
    # once: it saw the process exit (its supervisor said so), not a silence.
    stopped = run.killed[1]
    resent = re.findall(rf"write side pid {stopped} lost; re-sending (\d+) requests",
                        run.stderr)
    assert resent and int(resent[0]) > 0, f"no command in flight on it: {resent}"
    assert f"(pid {stopped}) exited" in run.stderr
    assert_same(run, reference)
    # Every command answered (accepted or refused) has its id and result stored: a copy
    # sent again, or re-sent by the router after a kill, found it and ran no second time.
    acknowledged = {command_ids.from_client(*(("directory", body["command_id"])
                                              if "command_id" in body else
                                              ("accounts", body["command"]["commandId"])))
                    for body, reply in zip(run.requests, run.raw)
                    if reply["type"] == "command_result"}
    store = open_store(url, read_only=True)
    try:
        found = store.find_commands(sorted(acknowledged))
    finally:
        store.close()
    assert set(found) == acknowledged


def assert_same(run: Run, reference: Run) -> None:
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(run.replies, reference.replies)) if a != b]
    assert len(run.replies) == len(reference.replies)
    assert not diff, "replies differ from one write side's:\n" + "\n".join(
        f"#{i}: {a}\n  one write side: {b}" for i, a, b in diff[:5])
    assert run.store == reference.store, "the stored events differ from one write side's"


def test_sample_data_is_written_once_by_several_write_sides(postgres_cluster):
    """Three write sides start on one empty store at once: one of them writes the sample
    data, and only one."""
    from write_side.contexts import load_all as write_contexts

    url = new_url(postgres_cluster)
    node = Node("--store", url, "--write-sides", "3")
    try:
        reply = node.request({"type": "GetUser", "msg_id": 1, "params": {"user_id": "user-123"}})
        assert reply["type"] == "query_result" and reply["data"]["id"] == "user-123", reply
        node.close_stdin()
        assert node.wait(30) == 0
    finally:
        node.stop()
    stored = Counter((e["context"], e["stream_id"]) for e in read_events(url))
    sample = Counter((name, row[0]) for name, module in write_contexts().items()
                     for row in module.SAMPLE)
    assert stored == sample


# ---- races between clients, in service mode --------------------------------------------------

class MultiWriteNode:
    """Router, N write sides (each binding its own events and catch-up endpoints) and read
    sides following every write side's stream, as `python -m` processes on loopback TCP,
    all on one PostgreSQL store."""

    def __init__(self, tmp_path: Path, url: str, write_sides: int, read_sides: int = 1) -> None:
        self.tmp_path = tmp_path
        self.endpoints = role_endpoints()
        self.client_endpoint = self.endpoints["CLIENT"]
        ports = free_ports(2 * write_sides)
        self.pairs = [(f"tcp://127.0.0.1:{ports[2 * i]}", f"tcp://127.0.0.1:{ports[2 * i + 1]}")
                      for i in range(write_sides)]
        self.env = {**service_env(self.endpoints, tmp_path / "data"), "CQRS_STORE": url,
                    "CQRS_EVENTS_ENDPOINT": ",".join(e for e, _ in self.pairs),
                    "CQRS_CATCHUP_ENDPOINT": ",".join(c for _, c in self.pairs)}
        self.procs: dict[str, subprocess.Popen] = {}
        self.start("router", "router")
        for i, (events, catchup) in enumerate(self.pairs):
            self.start(f"write-{i + 1}", "write_side", CQRS_EVENTS_ENDPOINT=events,
                       CQRS_CATCHUP_ENDPOINT=catchup)
        for i in range(read_sides):
            self.start(f"read-{i + 1}", "read_side")
        self.ids = itertools.count(800_000_000)

    def start(self, name: str, module: str, **env: str) -> None:
        self.procs[name] = start_module(module, {**self.env, **env}, self.tmp_path,
                                        self.tmp_path / f"{name}.err")

    def logs(self) -> str:
        return "\n".join(f"--- {name} (exit {p.poll()})\n"
                         f"{(self.tmp_path / f'{name}.err').read_text(errors='replace')[-2000:]}"
                         for name, p in self.procs.items())

    def wait_ready(self, write_sides: int) -> None:
        client = Dealer(self.client_endpoint)
        try:
            def ready() -> bool:
                dead = [n for n, p in self.procs.items() if p.poll() is not None]
                assert not dead, f"{dead} exited while starting\n{self.logs()}"
                procs = stats(client, next(self.ids), 5.0)["processes"]
                return sum(p["role"] == "write" and p["ready"] for p in procs) == write_sides \
                    and any(p["role"] == "read" and p["ready"] for p in procs)

            assert wait_until(ready, 60, 0.2), f"not ready\n{self.logs()}"
        finally:
            client.close()
        assert probe(self.client_endpoint) is None, self.logs()

    def stop(self) -> list[int]:
        return stop_processes(self.procs.values(), set())


class Client(threading.Thread):
    """One client's requests on shared streams and shared emails, pipelined, in two phases
    (the second names the users its first created); every reply kept, in arrival order."""

    def __init__(self, endpoint: str, number: int, size: int, start: threading.Barrier) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.number, self.size, self.start_together = endpoint, number, size, start
        self.rng = random.Random(number)
        self.msg_ids = itertools.count(number * 1_000_000)
        self.sent: list[dict] = []
        self.replies: list[dict] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            dealer = Dealer(self.endpoint, send_timeout=10)
            try:
                self.start_together.wait(30)
                self._phase(dealer, self._first())
                mine = [r["events"][0]["payload"]["id"] for r in self.replies
                        if r.get("success") and r["events"][0].get("type") == "UserCreated"]
                self._phase(dealer, self._second(mine))
            finally:
                dealer.close()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _phase(self, dealer: Dealer, bodies: list[dict]) -> None:
        self.sent += bodies
        dealer.send(*bodies)
        for _ in bodies:
            self.replies.append(dealer.recv(timeout=60))

    def _command(self, body: dict) -> dict:
        body["msg_id"] = next(self.msg_ids)
        cid = f"c{self.number}-{body['msg_id']}"
        if body["type"] == "command":
            body["command"]["commandId"] = cid
        else:
            body["command_id"] = cid
        return body

    def _first(self) -> list[dict]:
        n, rng = self.number, self.rng
        out = [self._command({"type": "command", "command": {"type": "CreateUser", "payload": {
            "id": acc, "name": f"C{n}"}}}) for acc in rng.sample(ACCOUNTS, len(ACCOUNTS))]
        for i in range(self.size):
            if rng.random() < 0.6:
                out.append(self._command({"type": "command", "command": {
                    "type": "RenameUser", "payload": {"id": rng.choice(ACCOUNTS),
                                                      "name": f"c{n}-r{i}"}}}))
            else:
                out.append(self._command({"type": "CreateUser", "payload": {
                    "name": f"c{n}-b{i}", "email": rng.choice(EMAILS)}}))
        return out

    def _second(self, mine: list[str]) -> list[dict]:
        out, rng, n = [], self.rng, self.number
        for i in range(self.size):
            if mine and rng.random() < 0.5:
                out.append(self._command({"type": "ChangeEmail", "payload": {
                    "id": rng.choice(mine), "email": rng.choice(EMAILS + [f"own{n}-{i}@x.io"])}}))
            elif rng.random() < 0.9:
                out.append(self._command({"type": "command", "command": {
                    "type": "RenameUser", "payload": {"id": rng.choice(ACCOUNTS),
                                                      "name": f"c{n}-s{i}"}}}))
            else:
                out.append(self._command({"type": "command", "command": {
                    "type": "DeleteUser", "payload": {"id": rng.choice(ACCOUNTS)}}}))
        return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("write_sides,kill", [(2, False), (3, False), (3, True)],
                         ids=["2 write sides", "3 write sides", "3, one killed"])
def test_concurrent_clients_on_shared_streams_and_emails(tmp_path, postgres_store, write_sides,
                                                         kill):
    node = MultiWriteNode(tmp_path, postgres_store, write_sides)
    try:
        node.wait_ready(write_sides)
        start = threading.Barrier(6)
        clients = [Client(node.client_endpoint, n, 150, start) for n in range(6)]
        for client in clients:
            client.start()
        if kill:
            # Mid-burst: once the clients' first commands have been answered.
            assert wait_until(lambda: sum(len(c.replies) for c in clients) > 200, 60)
            os.kill(node.procs["write-1"].pid, signal.SIGKILL)
        for client in clients:
            client.join(240)
            assert not client.is_alive() and client.error is None, \
                f"client {client.number}: {client.error!r}\n{node.logs()}"
        events = read_events(postgres_store)
        check_races(clients, events)
        check_projections(node, events)
    finally:
        left = node.stop()
    assert not left, f"processes left running: {left}"


def check_races(clients: list[Client], events: list[dict]) -> None:
    """What the database arbitrated: one creator per stream, one holder per email, every
    acknowledged command stored exactly once and every refused one not at all."""
    for client in clients:
        assert [r["in_reply_to"] for r in client.replies] == [b["msg_id"] for b in client.sent], \
            f"client {client.number}: replies out of order"
        errors = [r for r in client.replies if r["type"] == "error"]
        assert not errors, f"client {client.number}: {errors[:3]}"
    pairs = [(body, reply) for c in clients for body, reply in zip(c.sent, c.replies)]
    # The shared streams (the sample user and the readiness probe's are not the clients').
    accounts = [e for e in events if e["context"] == "accounts" and e["stream_id"] in ACCOUNTS]
    directory = [e for e in events if e["context"] == "directory"]
    # One creator per shared stream, and it is the one whose create succeeded.
    created = Counter(e["stream_id"] for e in accounts if e["type"] == "UserCreated")
    assert created == Counter(ACCOUNTS), created
    winners = {body["command"]["payload"]["id"]: body["command"]["payload"]["name"]
               for body, reply in pairs if body["type"] == "command"
               and body["command"]["type"] == "CreateUser" and reply["success"]}
    assert winners == {e["stream_id"]: e["data"]["name"] for e in accounts
                       if e["type"] == "UserCreated"}
    # Every rename stored once if acknowledged, never if refused (each name is unique).
    renamed = Counter((e["stream_id"], e["data"]["name"]) for e in accounts
                      if e["type"] == "UserRenamed")
    for body, reply in pairs:
        if body["type"] == "command" and body["command"]["type"] == "RenameUser":
            key = (body["command"]["payload"]["id"], body["command"]["payload"]["name"])
            assert renamed[key] == (1 if reply["success"] else 0), (body, reply)
    # Registrations: each name is unique; one user per email, case aside.
    registered = Counter(e["data"]["name"] for e in directory if e["type"] == "UserCreated")
    for body, reply in pairs:
        if body["type"] == "CreateUser":
            assert registered[body["payload"]["name"]] == (1 if reply["success"] else 0)
    holders: dict[str, str] = {}
    for e in directory:
        if e["type"] in ("UserCreated", "UserEmailChanged"):
            holders[e["stream_id"]] = e["data"]["email"].lower()
    emails = Counter(holders.values())
    assert all(n == 1 for n in emails.values()), f"an email held twice: {emails}"
    assert set(emails) & set(EMAILS), "no shared email was ever registered: no race ran"
    refused = sum(not r.get("success") for _, r in pairs)
    assert refused > 0 and refused < len(pairs)


def check_projections(node: MultiWriteNode, events: list[dict]) -> None:
    """Every user, listed and one by one, as the node answers and as a fold of the store."""
    users = sorted({e["stream_id"] for e in events if e["context"] == "directory"})
    queries = [{"type": "ListUsers", "params": {"limit": 1000}},
               {"type": "query", "query": {"type": "ListUsers", "params": {"limit": 1000}}}]
    queries += [{"type": "query", "query": {"type": "GetUserHistory", "params": {"userId": a}}}
                for a in ACCOUNTS]
    queries += [{"type": "GetUser", "params": {"user_id": u}} for u in users]
    queries += [{"type": "FindUserByEmail", "params": {"email": e}} for e in EMAILS]
    client = Dealer(node.client_endpoint)
    try:
        # A fresh client's first query is answered as of the head the router knows, which
        # is past every acknowledged command.
        replies = [client.request({**q, "msg_id": next(node.ids)}, 30) for q in queries]
    finally:
        client.close()
    mismatches = fold_mismatches(events, queries, replies)
    assert not mismatches, "\n".join(mismatches[:10])
