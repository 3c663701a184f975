"""CURVE in service mode: only peers whose public key is allowed reach the node.

The router, the write side and one read replica run as separate processes on
loopback TCP. The binding processes (router, write side) get the server key
and the folder of allowed keys; the connecting ones (write side, read sides,
clients) get the server's public key and a key of their own.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import zmq
import zmq.auth

from tests.support.nodeproc import ROOT, descendants, kill_leftovers, wait_until

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
ROLES = ("CLIENT", "WRITE", "READ", "EVENTS", "CATCHUP")
REFUSED_WAIT = 2.0  # how long a refused client waits for a reply that must not come
SAMPLE_GET = b'{"type": "query_result", "in_reply_to": 3, "data": {"id": "user-123", ' \
             b'"name": "John Doe"}}'


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports nobody listens on (all bound at once, then released)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_keys(folder, name: str) -> tuple[str, str]:
    """`cqrs-keys folder name`: the (public, secret) key files."""
    subprocess.run([os.path.join(VENV_BIN, "cqrs-keys"), str(folder), name], check=True,
                   capture_output=True, timeout=30)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    assert public.exists() and secret.exists()
    return str(public), str(secret)


def public_text(key_file: str) -> str:
    return zmq.auth.load_certificate(key_file)[0].decode()


class CurveNode:
    """Router, write side and read replicas started directly, each with its own stderr file."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        keys, allowed, rogue = tmp_path / "keys", tmp_path / "allowed", tmp_path / "rogue"
        allowed.mkdir()
        self.server_public, self.server_secret = make_keys(keys, "server")
        self.node_public, self.node_secret = make_keys(keys, "node")
        self.alice_public, self.alice_secret = make_keys(keys, "alice")
        self.rogue_public, self.rogue_secret = make_keys(rogue, "mallory")
        for public in (self.node_public, self.alice_public):
            shutil.copy(public, allowed)
        self.allowed = str(allowed)

        ports = free_ports(len(ROLES))
        self.endpoints = {role: f"tcp://127.0.0.1:{port}" for role, port in zip(ROLES, ports)}
        self.client_endpoint = self.endpoints["CLIENT"]
        base = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
        self.base_env = {**base, "PATH": VENV_BIN + os.pathsep + base.get("PATH", ""),
                         "CQRS_DATA_DIR": str(tmp_path / "data"), "CQRS_TIMEOUT": "3",
                         **{f"CQRS_{role}_ENDPOINT": ep for role, ep in self.endpoints.items()}}
        self.procs: dict[str, subprocess.Popen] = {}
        self.seen: set[int] = set()

    def serving_env(self) -> dict:
        return {"CQRS_CURVE_SERVER_KEY": self.server_secret, "CQRS_CURVE_ALLOWED": self.allowed}

    def peer_env(self, secret: str) -> dict:
        return {"CQRS_CURVE_SERVER_PUBLIC": self.server_public, "CQRS_CURVE_CLIENT_KEY": secret}

    def start(self, name: str, module: str, env: dict) -> subprocess.Popen:
        with open(self.tmp_path / f"{name}.err", "wb") as err:
            proc = subprocess.Popen([os.path.join(VENV_BIN, "python"), "-m", module],
                                    env={**self.base_env, **env}, cwd=self.tmp_path,
                                    stdout=subprocess.DEVNULL, stderr=err)
        self.procs[name] = proc
        self.seen.add(proc.pid)
        return proc

    def start_all(self) -> None:
        self.start("router", "router", self.serving_env())
        self.start("write", "write_side", {**self.serving_env(), **self.peer_env(self.node_secret)})
        self.start("read", "read_side", self.peer_env(self.node_secret))

    def stderr(self, name: str) -> str:
        return (self.tmp_path / f"{name}.err").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.stderr(name)[-1500:]}" for name in self.procs)

    def client(self, secret: str | None = None, server_public: str | None = None) -> zmq.Socket:
        """A DEALER on the client endpoint: CURVE with `secret` as its key pair, or plain."""
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, int(REFUSED_WAIT * 1000))  # no peer: send would block
        if secret is not None:
            sock.curve_serverkey = zmq.auth.load_certificate(server_public or
                                                             self.server_public)[0]
            sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(secret)
        sock.connect(self.client_endpoint)
        return sock

    def stats(self, sock: zmq.Socket, msg_id: int) -> dict:
        reply = ask(sock, {"type": "stats", "msg_id": msg_id}, 15)
        assert reply is not None, "no stats reply\n" + self.logs()
        return json.loads(reply)["data"]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """An allowed client's GetUser query is answered (so every process is up)."""
        sock = self.client(self.alice_secret)
        deadline = time.monotonic() + timeout
        try:
            msg_id = 100
            while True:
                msg_id += 1
                reply = ask(sock, {"type": "GetUser", "msg_id": msg_id,
                                   "params": {"user_id": "user-123"}}, 5)
                if reply is not None and json.loads(reply)["type"] == "query_result":
                    return
                for name, proc in self.procs.items():
                    assert proc.poll() is None, f"{name} exited\n" + self.logs()
                assert time.monotonic() < deadline, "node never answered\n" + self.logs()
        finally:
            sock.close(0)

    def stop(self) -> list[int]:
        """Stop every process; return those still alive afterwards (killed, but reported)."""
        for proc in self.procs.values():
            self.seen |= descendants(proc.pid)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return kill_leftovers(self.seen, 5)


def ask(sock: zmq.Socket, body: dict, timeout: float) -> bytes | None:
    """Send one request; its reply frame, or None if it could not go out or no reply came
    within timeout seconds."""
    try:
        sock.send(json.dumps(body).encode())
    except zmq.Again:
        return None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sock.poll(int(left * 1000)):
            return None
        frame = sock.recv()
        if json.loads(frame).get("in_reply_to") == body["msg_id"]:
            return frame


@pytest.fixture
def node(tmp_path):
    """A ready CURVE node; torn down with nothing left running."""
    curve = CurveNode(tmp_path)
    try:
        curve.start_all()
        curve.wait_ready()
        yield curve
    finally:
        left = curve.stop()
        assert not left, f"processes left running: {left}"


# ---- tests --------------------------------------------------------------------------------

def test_allowed_client_is_served(node, tmp_path):
    """cqrs-client with an allowed key (from the environment), and a pyzmq CURVE client."""
    requests = [
        {"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]},
        {"type": "command", "msg_id": 2, "command": {"type": "CreateUser",
                                                     "payload": {"id": "c-1", "name": "Cy"}}},
        {"type": "query", "msg_id": 3, "query": {"type": "GetUser",
                                                 "params": {"userId": "c-1"}}},
    ]
    env = {**node.base_env, **node.peer_env(node.alice_secret)}
    done = subprocess.run([os.path.join(VENV_BIN, "cqrs-client"), "--connect",
                           node.client_endpoint, "--timeout", "15"],
                          input="".join(json.dumps(r) + "\n" for r in requests).encode(),
                          env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode() + node.logs()
    assert done.stdout.decode().splitlines() == [
        '{"type": "init_ok", "in_reply_to": 1}',
        '{"type": "command_result", "in_reply_to": 2, "success": true, '
        '"events": [{"eventType": "UserCreated", "aggregateId": "c-1"}]}',
        '{"type": "query_result", "in_reply_to": 3, "data": {"id": "c-1", "name": "Cy"}}',
    ]

    sock = node.client(node.alice_secret)
    try:
        assert ask(sock, {"type": "GetUser", "msg_id": 3, "params": {"user_id": "user-123"}},
                   15) == SAMPLE_GET
    finally:
        sock.close(0)
    assert "refused" not in node.stderr("router")


def test_client_with_unknown_key_is_refused(node):
    """A CURVE client whose key is not in the allowed folder gets nothing; the router logs it."""
    rogue = node.client(node.rogue_secret)
    good = node.client(node.alice_secret)
    try:
        assert ask(rogue, {"type": "init", "msg_id": 1}, REFUSED_WAIT) is None
        assert ask(rogue, {"type": "GetUser", "msg_id": 3,
                           "params": {"user_id": "user-123"}}, REFUSED_WAIT) is None
        assert ask(good, {"type": "GetUser", "msg_id": 3, "params": {"user_id": "user-123"}},
                   15) == SAMPLE_GET  # the node is up: the silence is the refusal
    finally:
        rogue.close(0)
        good.close(0)
    key = public_text(node.rogue_public)
    assert wait_until(lambda: f"refused a peer with an unknown CURVE key {key}"
                      in node.stderr("router"), 10), node.logs()
    assert public_text(node.alice_public) not in node.stderr("router")


def test_client_without_keys_is_refused(node):
    """A client that does not speak CURVE at all is refused: a failed handshake, logged."""
    plain = node.client()
    try:
        assert ask(plain, {"type": "init", "msg_id": 1}, REFUSED_WAIT) is None
    finally:
        plain.close(0)
    assert wait_until(lambda: "handshake failed" in node.stderr("router"), 10), node.logs()
    refusals = [line for line in node.stderr("router").splitlines() if "refused" in line]
    assert refusals and all("handshake failed" in line for line in refusals), refusals


def test_client_with_wrong_server_key_gets_nothing(node):
    """A client that trusts another server key cannot talk to this node."""
    sock = node.client(node.alice_secret, server_public=node.rogue_public)
    try:
        assert ask(sock, {"type": "init", "msg_id": 1}, REFUSED_WAIT) is None
    finally:
        sock.close(0)


def test_replica_with_unknown_key_never_becomes_ready(node):
    """A read replica with a key that is not allowed is refused by the router and the write
    side, never shows up as a read process, and never answers a query."""
    probe = node.client(node.alice_secret)
    try:
        good = node.procs["read"].pid
        rogue = node.start("rogue", "read_side", node.peer_env(node.rogue_secret))
        key = public_text(node.rogue_public)
        refused = f"refused a peer with an unknown CURVE key {key}"
        assert wait_until(lambda: refused in node.stderr("router"), 20), node.logs()
        assert wait_until(lambda: refused in node.stderr("write"), 20), node.logs()

        reads = [p for p in node.stats(probe, 1)["processes"] if p["role"] == "read"]
        assert [p["pid"] for p in reads] == [good], reads
        assert rogue.poll() is None, node.stderr("rogue")  # refused, not crashed

        # Without the good replica, nothing answers queries: they fail at the deadline.
        node.procs["read"].terminate()
        node.procs["read"].wait(15)
        reply = ask(probe, {"type": "GetUser", "msg_id": 2, "params": {"user_id": "user-123"}},
                    15)
        assert reply is not None, node.logs()
        body = json.loads(reply)
        assert body["type"] == "error" and body["code"] in (0, 11), body
        reads = [p for p in node.stats(probe, 3)["processes"] if p["role"] == "read"]
        assert reads == [], reads
        assert rogue.poll() is None
    finally:
        probe.close(0)
