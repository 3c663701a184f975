"""Attacks on a node in service mode: malformed frames on every endpoint, peers posing as
back ends under CURVE roles, public binds without CURVE, a catch-up flood, bad tap input.

Every test starts its own router, write side and read replica (`python -m router`,
`python -m write_side`, `python -m read_side`, each with CQRS_* endpoints on free loopback
ports and a data folder of the test's own), attacks one endpoint with a raw ZeroMQ peer,
and then checks what the node promises (issue 11): every process still runs with the same
pid, a normal client's command and query are still served right, and the attack shows in
`stats` (dropped_messages) or on stderr (refusals, in words).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import pytest
import zmq
import zmq.auth

from common import store_url, wire
from tests.support import envelope
from tests.support.dealer import Dealer
from tests.support.dialogue import assert_error_line
from tests.support.keys import make_keys, public_text
from tests.support.nodeproc import ROOT, VENV_BIN, wait_until
from tests.support.ports import free_ports
from tests.support.service import role_endpoints, service_env
from tests.support.service_node import ServiceNode, rss_mb, running_node
from write_side.store import read_events

FAKE_PID = 4_242_424  # the pid impostors claim: it must never show in stats
FORGED = "forged"     # in every forged result: no client may ever see it
HUGE_POSITION = 1 << 62


@pytest.fixture
def node(tmp_path):
    """A plain node (no CURVE) that serves; nothing left running afterwards."""
    with running_node(tmp_path) as service:
        yield service


def raw_peer(endpoint: str, curve: tuple[str, str] | None = None) -> Dealer:
    """A DEALER on any endpoint of the node, for frames no well-behaved peer sends."""
    return Dealer(endpoint, curve=curve, send_timeout=5.0)


def report(role: str, **fields) -> wire.Report:
    """A hello/status record an impostor sends: ready, claiming FAKE_PID."""
    return wire.Report(role, fields.get("pid", FAKE_PID), fields.get("ready", True),
                       fields.get("position", 0), fields.get("counters", {}))


def forged_results(role: str, seqs: Iterable[int], position: int = HUGE_POSITION) -> bytes:
    """A results (write) or answers (read) body answering requests `seqs` with forged data."""
    if role == "write":
        return wire.pack([wire.CommandResult(seq, {"success": True, "events": [
            {"eventType": "UserCreated", "aggregateId": FORGED}]}, position) for seq in seqs])
    return wire.pack(wire.Answers(position, [wire.QueryAnswer(seq, {"json": json.dumps(FORGED)})
                                             for seq in seqs]))


def impostor_pids(service: ServiceNode) -> list[dict]:
    return [p for p in service.stats()["processes"] if p["pid"] == FAKE_PID]


# ---- 2. every frame is validated where it arrives ---------------------------------------

def backend_cases(role: str) -> dict[str, list[bytes]]:
    """Malformed messages for the router's endpoint of `role` ("write" or "read")."""
    valid = report(role)
    other = "read" if role == "write" else "write"
    answer_kind = wire.RESULTS if role == "write" else wire.ANSWERS
    return {
        "one frame instead of two": [wire.HELLO],
        "three frames": [wire.STATUS, wire.pack(valid), b"trailing"],
        "bad msgpack": [wire.HELLO, b"\xc1"],
        "hello whose body is a map": [wire.HELLO, wire.pack(valid._asdict())],
        "hello missing a field": [wire.HELLO, wire.pack(list(valid)[:4])],
        "status whose body is a map": [wire.STATUS, wire.pack(valid._asdict())],
        "status missing a field": [wire.STATUS, wire.pack(list(valid)[1:])],
        f"hello of a {other} side": [wire.HELLO, wire.pack(report(other))],
        "hello with a position past 64 bits": [wire.HELLO,
                                               wire.pack(valid._replace(position=(1 << 64) - 1))],
        "hello with text counters": [wire.HELLO, wire.pack(valid._replace(counters={"x": "1"}))],
        "unknown kind": [b"frobnicate", wire.pack([])],
        f"{answer_kind.decode()} for requests it was never sent": [
            answer_kind, forged_results(role, range(0, 256))],
    }


CATCHUP_CASES = {
    "bad msgpack": [b"\xc1"],
    "after = 2**64 - 1": [wire.pack({"req": 1, "after": (1 << 64) - 1})],
    "after a string of 30 digits": [wire.pack({"req": 1, "after": "1" * 30})],
    "a list instead of a map": [wire.pack([1, 0])],
    "negative req": [wire.pack({"req": -1, "after": 0})],
    "limit 0": [wire.pack({"req": 1, "after": 0, "limit": 0})],
    "two frames": [wire.pack({"req": 1, "after": 0}), b"trailing"],
}

MALFORMED = ([("WRITE", name, frames) for name, frames in backend_cases("write").items()]
             + [("READ", name, frames) for name, frames in backend_cases("read").items()]
             + [("CATCHUP", name, frames) for name, frames in CATCHUP_CASES.items()]
             + [("CLIENT", "a request of two frames",
                 [b'{"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]}',
                  b"trailing"])])


def dropped(service: ServiceNode, endpoint: str) -> int:
    """The drops counted by the process that owns `endpoint`, as stats shows them."""
    if endpoint == "CATCHUP":
        counters = service.process_counters("write")
        assert "dropped_messages" in counters, f"no dropped_messages in write side: {counters}"
        return counters["dropped_messages"]
    return service.stats()["router"]["dropped_messages"]


@pytest.mark.parametrize("endpoint,case,frames", MALFORMED,
                         ids=[f"{e.lower()}-{c.replace(' ', '_')}" for e, c, _f in MALFORMED])
def test_malformed_frame_is_dropped_and_counted(node, endpoint, case, frames):
    """One malformed message on one endpoint: no process dies or changes, a normal client is
    still served, the message is counted as dropped by its receiver, and the peer that sent
    it is never taken for a back end (the router sends it nothing, stats never lists it)."""
    pids = node.pids()
    before = dropped(node, endpoint)
    peer = raw_peer(node.endpoints[endpoint])
    try:
        peer.socket.send_multipart(frames)
        what = f"{case!r} on the {endpoint.lower()} endpoint"
        node.assert_serves(what)
        node.assert_alive(pids, what)
        counted: list[int] = []
        assert wait_until(lambda: counted.append(dropped(node, endpoint)) or
                          counted[-1] > before, 15, 0.2), \
            f"{what} was not counted as dropped: dropped_messages stayed {before} " \
            f"(now {counted[-1:]})\n{node.logs()}"
        if endpoint in ("WRITE", "READ"):
            assert not impostor_pids(node), f"after {what}, stats lists the sender as a back end"
        if endpoint != "CLIENT":
            # The probe above took a while: a reply or a request sent to this peer is here.
            got = peer.recv_frames(0)
            assert got is None, f"after {what}, the node sent the sender {got[:2]!r}"
    finally:
        peer.close()


def test_every_process_reports_dropped_messages(node):
    """stats shows dropped_messages for the router and in each process's counters, and the
    write side's catchup_not_sent."""
    data = node.stats()
    assert "dropped_messages" in data["router"], data["router"]
    roles = {p["role"]: p["counters"] for p in data["processes"]}
    assert set(roles) == {"write", "read"}, data["processes"]
    for role, counters in roles.items():
        assert "dropped_messages" in counters, f"{role} side counters lack it: {counters}"
    assert "catchup_not_sent" in roles["write"], roles["write"]


def test_oversized_client_frame_gets_error_12(node):
    """A 20 MiB request frame (the line limit is 1 MiB) is answered with error 12, carrying
    its msg_id when one is near an end of it (else null), and nothing of it is stored."""
    client = node.client(send_timeout=60)
    pids = node.pids()
    try:
        filler = b"A" * (20 << 20)
        with_id = (b'{"type": "command", "msg_id": 4242, "command": {"type": "CreateUser", '
                   b'"payload": {"id": "huge-1", "name": "' + filler + b'"}}}')
        without_id = b'{"type": "command", "command": {"type": "CreateUser", "payload": ' \
                     b'{"id": "huge-2", "name": "' + filler + b'"}}}'
        client.send(with_id, without_id)
        for in_reply_to in (4242, None):
            frames = client.recv_frames(60)
            assert frames is not None, f"no reply to a 20 MiB frame within 60 s\n{node.logs()}"
            assert_error_line(frames[-1].decode(), in_reply_to, 12)
        for uid in ("huge-1", "huge-2"):
            m = node.next_id()
            assert client.request(envelope.get_user(uid, msg_id=m), 15) == \
                {"type": "query_result", "in_reply_to": m, "data": None}, \
                f"{uid} from an oversized frame was stored"
    finally:
        client.close()
    node.assert_alive(pids, "two 20 MiB frames")
    node.assert_serves("two 20 MiB frames")


HOSTILE_CLIENT_FRAMES = {
    "nesting 200,000 deep": (b"[" * 200_000, None),
    "bytes that are not UTF-8": (b'{"type": "init", "msg_id": 7, "x": "\xff\xfe"}', None),
    "an integer past 64 bits": (json.dumps(envelope.create("wide", "W", msg_id=8)).replace(
        '"name": "W"', '"name": "W", "age": %d' % (1 << 70)).encode(), 8),
    # The node reads 1e400 as not JSON at all, so the reply may not know the msg_id.
    "a number past a double": (b'{"type": "command", "msg_id": 9, "command": {"type": '
                               b'"CreateUser", "payload": {"id": "inf", "name": 1e400}}}',
                               (9, None)),
}


def test_hostile_client_frames_get_error_12(node):
    """Frames no JSON parser should trust: each is answered with error 12 (with its msg_id
    when it has one), nothing of them is stored, and the router runs on."""
    pids = node.pids()
    client = node.client()
    try:
        for case, (frame, msg_ids) in HOSTILE_CLIENT_FRAMES.items():
            client.send(frame)
            reply = client.recv(15)
            allowed = msg_ids if isinstance(msg_ids, tuple) else (msg_ids,)
            assert reply.get("type") == "error" and reply.get("code") == 12 and \
                reply.get("in_reply_to") in allowed, f"{case}: {reply}"
    finally:
        client.close()
    node.assert_alive(pids, "hostile client frames")
    node.assert_serves("hostile client frames")


def test_frame_past_the_message_limit_costs_only_its_connection(node):
    """A 72 MiB frame, past what the client endpoint reads at all: the router neither dies
    nor grows by it, and every other client is served."""
    pids = node.pids()
    watch = RssWatch(pids["router"], RSS_LIMIT_MB, "router")
    watch.start()
    client = node.client(send_timeout=60)
    try:
        client.socket.send(b"x" * (72 << 20), copy=False)
        node.assert_serves("a 72 MiB client frame")
        node.assert_alive(pids, "a 72 MiB client frame")
    finally:
        client.close()
        watch.stop()
    watch.check("receiving a 72 MiB client frame")


BIG_FRAME_MB = 400


@pytest.mark.timeout(300)
@pytest.mark.parametrize("endpoint", ["CATCHUP", "WRITE", "READ"])
def test_huge_frame_on_a_back_end_endpoint_is_not_taken_whole(node, endpoint):
    """Beyond the brief: a 400 MiB frame on the catch-up endpoint (the write endpoint, the
    read endpoint) is refused by size, not read whole into the write side's (router's)
    memory: its RSS stays under 300 MB, and it runs on and serves. A catch-up request or a
    back-end message is a few kilobytes; without a message-size limit one peer can make the
    process allocate whatever it likes."""
    owner = "write" if endpoint == "CATCHUP" else "router"
    pids = node.pids()
    before = dropped(node, endpoint)
    watch = RssWatch(pids[owner], RSS_LIMIT_MB, "write side" if owner == "write" else owner)
    watch.start()
    ctx = zmq.Context()
    sender = ctx.socket(zmq.DEALER)
    sender.setsockopt(zmq.LINGER, 0)
    monitor = sender.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    sender.connect(node.endpoints[endpoint])
    try:
        big = b"\x00" * (BIG_FRAME_MB << 20)
        frames = [big] if endpoint == "CATCHUP" else [wire.HELLO, big]
        sender.send_multipart(frames, copy=False)
        del big, frames
        # Either the receiver hangs up on the frame (refused by size), or it read it whole
        # and counted it as dropped: wait for one or the other.
        assert wait_until(lambda: monitor.poll(0) or dropped(node, endpoint) > before, 120,
                          0.2), f"neither a hang-up nor a drop after a {BIG_FRAME_MB} MiB frame"
        time.sleep(1.0)  # RSS sampled a second longer, not a wait for the node
        watch.check(f"after a {BIG_FRAME_MB} MiB frame on the {endpoint.lower()} endpoint")
    finally:
        watch.stop()
        monitor.close(0)
        sender.close(0)
        ctx.term()
    node.assert_alive(pids, f"a {BIG_FRAME_MB} MiB frame on the {endpoint.lower()} endpoint")
    node.assert_serves(f"a {BIG_FRAME_MB} MiB frame on the {endpoint.lower()} endpoint")


# ---- 3. roles under CURVE -------------------------------------------------------------------

class RolesNode:
    """Key pairs and folders for CURVE with roles: clients (alice) in CQRS_CURVE_ALLOWED,
    the write side's key in CQRS_CURVE_WRITERS, the read side's in CQRS_CURVE_READERS."""

    def __init__(self, tmp_path) -> None:
        keys = tmp_path / "keys"
        self.server_public, self.server_secret = make_keys(keys, "server")
        self.keys = {name: make_keys(keys, name) for name in ("alice", "writer", "reader")}
        self.folders = {}
        for var, name in (("ALLOWED", "alice"), ("WRITERS", "writer"), ("READERS", "reader")):
            folder = tmp_path / var.lower()
            folder.mkdir()
            shutil.copy(self.keys[name][0], folder)
            self.folders[f"CQRS_CURVE_{var}"] = str(folder)

    def serving(self) -> dict:
        return {"CQRS_CURVE_SERVER_KEY": self.server_secret, **self.folders}

    def peer(self, name: str) -> dict:
        return {"CQRS_CURVE_SERVER_PUBLIC": self.server_public,
                "CQRS_CURVE_CLIENT_KEY": self.keys[name][1]}

    def curve(self, name: str) -> tuple[str, str]:
        return self.server_public, self.keys[name][1]

    def public(self, name: str) -> str:
        return public_text(self.keys[name][0])


@pytest.fixture
def roles(tmp_path):
    return RolesNode(tmp_path)


@pytest.fixture
def curve_node(tmp_path, roles):
    """A node with CURVE and roles on; alice's key is the clients' (probes use it)."""
    env_for = {"router": roles.serving(), "write": {**roles.serving(), **roles.peer("writer")},
               "read": roles.peer("reader")}
    with running_node(tmp_path, env_for, curve=roles.curve("alice")) as service:
        yield service


class Impostor(threading.Thread):
    """A peer on a back-end endpoint of the router claiming to be a ready write side or read
    replica (a hello, then a status every 0.1 s, with a huge position), answering whatever
    the router sends it with forged results, and answering requests it was never sent
    (every seq below 5,000) too."""

    def __init__(self, endpoint: str, role: str, curve: tuple[str, str]) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.role, self.curve = endpoint, role, curve
        self.stopping = threading.Event()
        self.received: Counter = Counter()  # kinds of messages the router sent it
        self.sent = 0                        # messages that went out (a refused peer: none)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def _run(self) -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_serverkey = zmq.auth.load_certificate(self.curve[0])[0]
        sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(self.curve[1])
        sock.connect(self.endpoint)
        record = report(self.role, position=HUGE_POSITION)
        kind = wire.HELLO
        answer = wire.RESULTS if self.role == "write" else wire.ANSWERS
        next_status = next_spray = 0.0
        spray = 0
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if now >= next_status:
                    self._send(sock, [kind, wire.pack(record)])
                    kind, next_status = wire.STATUS, now + 0.1
                if now >= next_spray:
                    self._send(sock, [answer, forged_results(self.role,
                                                             range(spray, spray + 500))])
                    spray, next_spray = (spray + 500) % 5000, now + 0.05
                if sock.poll(20):
                    got_kind, body = (sock.recv_multipart() + [b""])[:2]
                    self.received[got_kind] += 1
                    seqs = [r.seq for r in (wire.command_requests(body) if self.role == "write"
                                            else wire.query_requests(body))]
                    self._send(sock, [answer, forged_results(self.role, seqs)])
        finally:
            sock.close(0)
            ctx.term()

    def _send(self, sock: zmq.Socket, frames: list[bytes]) -> None:
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:  # no connection (refused): nothing to say it to
            pass

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)
        assert not self.is_alive(), "the impostor thread did not stop"
        assert self.error is None, f"the impostor failed: {self.error!r}"


def client_traffic(service: ServiceNode, prefix: str, rounds: int) -> list[str]:
    """A real client (alice) writes users and reads them and the sample user back, in
    rounds; every reply checked. What went wrong, as text ([] if nothing)."""
    problems: list[str] = []
    client = service.client()
    try:
        for r in range(rounds):
            requests, checks = [], []
            for i in range(10):
                uid, name, m = f"{prefix}-{r}-{i}", f"N{r}-{i}", service.next_id()
                requests.append(envelope.create(uid, name, msg_id=m))
                checks.append({"type": "command_result", "in_reply_to": m, "success": True,
                               "events": [{"eventType": "UserCreated", "aggregateId": uid}]})
                m = service.next_id()
                requests.append(envelope.get_user(uid, msg_id=m))
                checks.append({"type": "query_result", "in_reply_to": m,
                               "data": {"id": uid, "name": name}})
            m = service.next_id()
            requests.append(envelope.get_user("user-123", msg_id=m))
            checks.append({"type": "query_result", "in_reply_to": m,
                           "data": {"id": "user-123", "name": "John"}})
            client.send(*requests)
            for request, expected in zip(requests, checks):
                frames = client.recv_frames(20)
                if frames is None:
                    problems.append(f"no reply to {request} within 20 s")
                    return problems
                if FORGED.encode() in frames[-1]:
                    problems.append(f"a client saw forged data: {frames[-1]!r}")
                elif json.loads(frames[-1]) != expected:
                    problems.append(f"{request} -> {frames[-1]!r}")
    finally:
        client.close()
    return problems


def stored_accounts(service: ServiceNode, prefix: str) -> Counter:
    """UserCreated events per stream of this prefix in the store (opened read-only)."""
    events = read_events(store_url.resolve("", str(service.data_dir), ""))
    return Counter(e["stream_id"] for e in events if e["context"] == "accounts"
                   and e["stream_id"].startswith(prefix + "-") and e["type"] == "UserCreated")


def refusal_lines(service: ServiceNode, key: str) -> list[str]:
    return [line for line in service.stderr("router").splitlines() if key in line]


def assert_refusal_logged(service: ServiceNode, key_name: str, key: str, endpoint: str,
                          key_role: str) -> None:
    """The router logged, once, in words: refused, the key, the endpoint, the key's role."""
    assert wait_until(lambda: refusal_lines(service, key), 10), \
        f"the router's stderr never names the refused {key_name} key {key}:\n" \
        f"{service.stderr('router')[-3000:]}"
    lines = refusal_lines(service, key)
    assert len(lines) == 1, f"the refusal of {key_name}'s key is not logged once: {lines}"
    line = lines[0].lower()
    assert "refus" in line and endpoint in line and key_role in line, \
        f"the refusal does not say in words that a {key_role} key was refused on the " \
        f"{endpoint} endpoint: {lines[0]}"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("endpoint,role", [("WRITE", "write"), ("READ", "read")])
def test_client_key_cannot_act_as_a_back_end(curve_node, roles, endpoint, role):
    """A peer with a CLIENT key on the write (read) endpoint says hello as a ready write side
    (read replica) with a huge position and answers commands (queries) with forged results,
    including ones it was never sent. It never becomes a member; a real client's commands and
    queries, sent during the attack, are all answered by the real back ends, every
    acknowledged command is in the store, and nobody sees the forged data."""
    pids = curve_node.pids()
    impostor = Impostor(curve_node.endpoints[endpoint], role, roles.curve("alice"))
    impostor.start()
    try:
        wait_until(lambda: refusal_lines(curve_node, roles.public("alice")), 5)
        problems = client_traffic(curve_node, f"during-{role}", rounds=15)
        members = impostor_pids(curve_node)
    finally:
        impostor.stop()

    assert not problems, f"{len(problems)} bad replies during the attack:\n" + \
        "\n".join(problems[:8])
    assert not members, f"the client key became a {role} member: {members}"
    assert not impostor.received, \
        f"the router sent the impostor {dict(impostor.received)}: it was taken for a {role} side"
    stored = stored_accounts(curve_node, f"during-{role}")
    assert stored == Counter({f"during-{role}-{r}-{i}": 1 for r in range(15) for i in range(10)}), \
        f"acknowledged commands missing or doubled in the store: {stored}"
    curve_node.assert_alive(pids, f"a client key posing as a {role} side")
    assert_refusal_logged(curve_node, "alice", roles.public("alice"), role, "client")


@pytest.mark.parametrize("key,endpoint,role", [("writer", "READ", "read"),
                                               ("reader", "WRITE", "write")])
def test_back_end_key_of_the_other_role_is_refused(curve_node, roles, key, endpoint, role):
    """A writer key on the read endpoint (a reader key on the write endpoint) is refused:
    it never becomes a member, nobody sees its forged answers, and the router says so."""
    impostor = Impostor(curve_node.endpoints[endpoint], role, roles.curve(key))
    impostor.start()
    try:
        wait_until(lambda: refusal_lines(curve_node, roles.public(key)), 5)
        problems = client_traffic(curve_node, f"{key}-on-{role}", rounds=5)
        members = impostor_pids(curve_node)
    finally:
        impostor.stop()
    assert not problems, "\n".join(problems[:8])
    assert not members, f"a {key} key became a {role} member: {members}"
    assert not impostor.received, f"the router sent a {key} key {dict(impostor.received)}"
    assert_refusal_logged(curve_node, key, roles.public(key), role, key)


def test_tap_with_a_client_key_reads_the_stream(curve_node, roles, tmp_path):
    """The write side's event and catch-up endpoints take client keys (taps)."""
    env = {**curve_node.base_env, **roles.peer("alice")}
    done = subprocess.run([os.path.join(VENV_BIN, "cqrs-tap"), "--endpoint",
                           curve_node.endpoints["EVENTS"], "--catchup-endpoint",
                           curve_node.endpoints["CATCHUP"], "--from-position", "1",
                           "--count", "3"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    positions = [json.loads(line)["position"] for line in done.stdout.decode().splitlines()]
    assert positions == [1, 2, 3], done.stdout.decode()[:1000]


# ---- 4. secure by default --------------------------------------------------------------------

def bind_env(tmp_path, role: str, host: str) -> tuple[dict, str]:
    """A service environment whose `role` endpoint binds on `host`; (env, that endpoint)."""
    endpoints = role_endpoints()
    port = free_ports(1)[0]
    endpoints[role] = f"tcp://{host}:{port}"
    return service_env(endpoints, tmp_path / "data"), endpoints[role]


def run_briefly(module: str, env: dict, cwd, err_path, timeout: float = 10.0) -> int | None:
    """Start `python -m module` (or run_node.py, the launcher), stdin empty; its exit
    status, or None if it was still running after `timeout` seconds (then it is killed)."""
    program = [os.path.join(ROOT, "run_node.py")] if module == "run_node" else ["-m", module]
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([os.path.join(VENV_BIN, "python"), *program], env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


PUBLIC_BINDS = [("router", "CLIENT", "0.0.0.0"), ("router", "CLIENT", "*"),
                ("router", "CLIENT", "[::]"), ("router", "WRITE", "0.0.0.0"),
                ("router", "READ", "0.0.0.0"), ("write_side", "EVENTS", "0.0.0.0"),
                ("write_side", "CATCHUP", "0.0.0.0"), ("run_node", "EVENTS", "0.0.0.0"),
                ("run_node", "WRITE", "*")]


@pytest.mark.parametrize("module,role,host", PUBLIC_BINDS,
                         ids=[f"{m}-{r.lower()}-{h}" for m, r, h in PUBLIC_BINDS])
def test_public_bind_without_curve_is_refused(tmp_path, module, role, host):
    """Without CURVE, binding TCP on a non-loopback address is a usage error: exit 2 before
    serving, with the reason (the endpoint, and how to opt in: --insecure/CQRS_INSECURE).
    The same for run_node.py, whose own processes bind the events and back-end endpoints."""
    env, endpoint = bind_env(tmp_path, role, host)
    if module == "run_node":  # one node on stdin: no client endpoint, no ./data
        env = {k: v for k, v in env.items()
               if k not in ("CQRS_CLIENT_ENDPOINT", "CQRS_DATA_DIR")}
    err = tmp_path / "err"
    status = run_briefly(module, env, tmp_path, err)
    text = err.read_text(errors="replace")
    assert status is not None, \
        f"{module} with {endpoint} and no CURVE kept running (it should exit 2):\n{text[-1500:]}"
    assert status == 2, f"{module} with {endpoint}: exit {status}, not 2:\n{text[-1500:]}"
    assert endpoint in text or host in text, f"the refusal does not name the endpoint: {text}"
    assert "insecure" in text.lower(), f"the refusal does not say how to opt in: {text}"


@pytest.mark.parametrize("how", ["CQRS_INSECURE=1", "--insecure", "CURVE"])
def test_public_bind_allowed_with_insecure_or_curve(tmp_path, how):
    """The router binds its client endpoint on 0.0.0.0 when told --insecure (or
    CQRS_INSECURE=1), or when CURVE is on; a client on loopback is answered."""
    env, endpoint = bind_env(tmp_path, "CLIENT", "0.0.0.0")
    args: list[str] = []
    curve = None
    if how == "CQRS_INSECURE=1":
        env["CQRS_INSECURE"] = "1"
    elif how == "--insecure":
        args = ["--insecure"]
    else:
        keys = RolesNode(tmp_path)
        env.update(keys.serving())
        curve = keys.curve("alice")
    err_path = tmp_path / "router.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([os.path.join(VENV_BIN, "python"), "-m", "router", *args],
                                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    client = Dealer(endpoint.replace("0.0.0.0", "127.0.0.1"), curve=curve, send_timeout=2)
    try:
        def answered() -> bool:
            assert proc.poll() is None, \
                f"the router exited ({proc.returncode}) with {how}:\n{err_path.read_text()}"
            return client.ask({"type": "init", "msg_id": 1, "node_id": "n1",
                               "node_ids": ["n1"]}, 2) is not None

        assert wait_until(answered, 30, 0), err_path.read_text()
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- 5. the catch-up server is bounded ------------------------------------------------------

RSS_LIMIT_MB = 300
STORE_EVENTS = 20_000


def fill_store(service: ServiceNode, count: int, tmp_path) -> None:
    """`count` users of 300-character names, written through the node by cqrs-client."""
    lines = "".join(json.dumps(envelope.create(f"fill-{i}", f"{i:06d}" + "x" * 294,
                                               msg_id=i + 1)) + "\n" for i in range(count))
    done = subprocess.run([os.path.join(VENV_BIN, "cqrs-client"), "--connect",
                           service.client_endpoint, "--timeout", "60"], input=lines.encode(),
                          env=service.base_env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    replies = done.stdout.decode().splitlines()
    assert len(replies) == count, f"{len(replies)} replies to {count} commands"
    bad = [r for r in replies if '"success": true' not in r]
    assert not bad, bad[:3]


class RssWatch(threading.Thread):
    """Samples a process's VmRSS every 50 ms in the background, until stopped."""

    def __init__(self, pid: int, limit_mb: float, name: str = "write side") -> None:
        super().__init__(daemon=True)
        self.pid, self.limit, self.name = pid, limit_mb, name
        self.samples: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.samples.append(rss_mb(self.pid))
            self.stopping.wait(0.05)  # the sampling period, not a wait for the node

    def check(self, when: str) -> None:
        peak = max(self.samples, default=0.0)
        assert peak <= self.limit, \
            f"{when}, the {self.name}'s RSS reached {peak:.0f} MB (limit {self.limit} MB); " \
            f"last samples, 50 ms apart: {[round(s) for s in self.samples[-40:]]}"

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


def silent_catchup_peer(endpoint: str) -> zmq.Socket:
    """A DEALER on the catch-up endpoint that never reads (and holds at most one reply
    itself, so the test process does not grow either)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1)
    sock.setsockopt(zmq.RCVBUF, 64 * 1024)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(endpoint)
    return sock


@dataclass
class Flood:
    """What a catch-up flood did (catchup_attack)."""
    what: str
    served_during: str | None  # a client's command and query during the flood: None if fine
    missing: list[float]       # seconds into the flood when stats did not list the write side
    counters: dict             # the write side's counters once the flood was through


def catchup_attack(service: ServiceNode, peers: list[zmq.Socket], per_peer: int) -> Flood:
    """Every peer asks `per_peer` times for the whole store (after 0) and never reads.
    Checked here: the write side's RSS stays under the limit (sampled every 50 ms, during
    and for 2 s after), and afterwards every process is the same and the node serves.
    Returned for the tests to judge: whether a client was served during the flood, whether
    the router lost the write side meanwhile, and the write side's counters."""
    pids = service.pids()
    watch = RssWatch(pids["write"], RSS_LIMIT_MB)
    watch.start()
    try:
        for i in range(per_peer):
            for sock in peers:
                sock.send(wire.catchup_request(i, 0))
        what = f"{per_peer * len(peers)} unread catch-up requests from {len(peers)} connection(s)"
        started = time.monotonic()
        served_during = service.probe(15.0)
        watch.check(f"during {what}")

        # Done when the catch-up counters have not moved for 3 s (the write side got through
        # the requests, or ignores the rest).
        counters: list[dict] = []
        missing: list[float] = []
        stable_since = time.monotonic()

        def settled() -> bool:
            nonlocal stable_since
            watch.check(f"during {what}")
            now = service.process_counters("write")
            if not now:
                missing.append(round(time.monotonic() - started, 1))
                return False
            keys = ("catchup_served", "catchup_not_sent")
            if not counters or [now.get(k) for k in keys] != [counters[-1].get(k) for k in keys]:
                stable_since = time.monotonic()
            counters.append(now)
            return time.monotonic() - stable_since >= 3.0

        assert wait_until(settled, 300, 0.5), \
            f"the write side's catch-up counters kept moving for 300 s: {counters[-1:]}"
        time.sleep(2.0)  # RSS sampled for 2 s after the flood, not a wait for the node
        watch.check(f"after {what}")
    finally:
        watch.stop()
    print(f"write side RSS: peak {max(watch.samples):.0f} MB over {len(watch.samples)} samples")
    service.assert_alive(pids, what)
    service.assert_serves(what)
    return Flood(what, served_during, missing, counters[-1])


@pytest.fixture
def filled_node(node, tmp_path):
    """The node with 20,000 more events, of 300-character names, written through it."""
    fill_store(node, STORE_EVENTS, tmp_path)
    return node


@pytest.mark.timeout(600)
def test_catchup_flood_from_one_connection_is_bounded(filled_node):
    """One connection sends 1,500 catch-up requests for a 20,000-event store without reading:
    the write side's RSS stays under 300 MB during and after, and the replies it could not
    queue are counted (catchup_not_sent)."""
    peer = silent_catchup_peer(filled_node.endpoints["CATCHUP"])
    try:
        flood = catchup_attack(filled_node, [peer], 1500)
    finally:
        peer.close(0)
    assert flood.counters.get("catchup_not_sent", 0) > 0, \
        f"no reply counted as not sent although the peer never read: {flood.counters}"


@pytest.mark.timeout(600)
def test_catchup_flood_does_not_stall_commands(filled_node):
    """While one connection's 1,500 unread catch-up requests are served, the write side
    still takes commands within their deadline and keeps reporting to the router (which
    drops a back end silent for 2 s): a client's command and query sent right after the
    flood are answered, and stats lists the write side throughout."""
    peer = silent_catchup_peer(filled_node.endpoints["CATCHUP"])
    try:
        flood = catchup_attack(filled_node, [peer], 1500)
    finally:
        peer.close(0)
    assert flood.served_during is None, \
        f"during {flood.what}, a client was not served: {flood.served_during}\n" \
        f"{filled_node.logs()}"
    assert not flood.missing, \
        f"during {flood.what}, the router lost the write side (silent for 2 s): missing " \
        f"from stats {flood.missing} s into the flood\n{filled_node.logs()}"


@pytest.mark.timeout(600)
def test_catchup_flood_from_many_connections_is_bounded(filled_node):
    """Beyond one connection: 100 connections each send 15 catch-up requests and never read.
    ZeroMQ's high-water mark is per connection, so a per-peer bound alone lets the queued
    replies grow with the number of peers; the write side must stay under 300 MB anyway."""
    peers = [silent_catchup_peer(filled_node.endpoints["CATCHUP"]) for _ in range(100)]
    try:
        catchup_attack(filled_node, peers, 15)
    finally:
        for peer in peers:
            peer.close(0)


TAP_POSITIONS = ["18446744073709551616", "9223372036854775809", "-1"]


@pytest.mark.parametrize("position", TAP_POSITIONS)
def test_tap_position_out_of_range_is_a_usage_error(node, position):
    """cqrs-tap --from-position past what the wire carries (2**64, 2**63 + 1: the catch-up
    request would ask after 2**63) or below 0 is a usage error (exit 2), not a tap waiting
    for ever for a reply the write side will never send."""
    env = dict(node.base_env)
    proc = subprocess.Popen([os.path.join(VENV_BIN, "cqrs-tap"), "--endpoint",
                             node.endpoints["EVENTS"], "--catchup-endpoint",
                             node.endpoints["CATCHUP"], "--from-position", position],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"cqrs-tap --from-position {position} was still running after 20 s "
                    f"instead of exiting 2 (usage error):\n{err.decode()[-1000:]}")
    assert proc.returncode == 2, \
        f"cqrs-tap --from-position {position}: exit {proc.returncode}, not 2\n{err.decode()}"
    assert "from-position" in err.decode(), err.decode()
    node.assert_serves(f"cqrs-tap --from-position {position}")
