"""CURVE in service mode: only peers whose public key is allowed reach the node.

The router, the write side and one read replica run as separate processes on
loopback TCP. The binding processes (router, write side) get the server key
and the folder of allowed keys; the connecting ones (write side, read sides,
clients) get the server's public key and a key of their own.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess

import pytest

from tests.support.dealer import Dealer
from tests.support.keys import make_keys, public_text
from tests.support.nodeproc import VENV_BIN, wait_until
from tests.support.service import role_endpoints, service_env, start_module, stop_processes
from tests.support.stats import processes

REFUSED_WAIT = 2.0  # how long a refused client waits for a reply that must not come
SAMPLE_GET = b'{"type": "query_result", "in_reply_to": 3, "data": {"id": "user-123", ' \
             b'"name": "John Doe"}}'


class CurveNode:
    """Router, write side and read replicas started directly, each with its own stderr file."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        keys, rogue = tmp_path / "keys", tmp_path / "rogue"
        self.server_public, self.server_secret = make_keys(keys, "server")
        self.node_public, self.node_secret = make_keys(keys, "node")
        self.alice_public, self.alice_secret = make_keys(keys, "alice")
        self.rogue_public, self.rogue_secret = make_keys(rogue, "mallory")
        # One folder of public keys per role: alice is a client; the back ends share "node".
        self.folders = {}
        for role, public in (("allowed", self.alice_public), ("writers", self.node_public),
                             ("readers", self.node_public)):
            (tmp_path / role).mkdir()
            shutil.copy(public, tmp_path / role)
            self.folders[role] = str(tmp_path / role)
        self.allowed = self.folders["allowed"]

        self.endpoints = role_endpoints()
        self.client_endpoint = self.endpoints["CLIENT"]
        self.base_env = {**service_env(self.endpoints, tmp_path / "data"), "CQRS_TIMEOUT": "3"}
        self.procs: dict[str, subprocess.Popen] = {}
        self.seen: set[int] = set()

    def serving_env(self) -> dict:
        return {"CQRS_CURVE_SERVER_KEY": self.server_secret, "CQRS_CURVE_ALLOWED": self.allowed,
                "CQRS_CURVE_WRITERS": self.folders["writers"],
                "CQRS_CURVE_READERS": self.folders["readers"]}

    def peer_env(self, secret: str) -> dict:
        return {"CQRS_CURVE_SERVER_PUBLIC": self.server_public, "CQRS_CURVE_CLIENT_KEY": secret}

    def start(self, name: str, module: str, env: dict) -> subprocess.Popen:
        proc = start_module(module, {**self.base_env, **env}, self.tmp_path,
                            self.tmp_path / f"{name}.err")
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

    def client(self, secret: str | None = None, server_public: str | None = None) -> Dealer:
        """A DEALER on the client endpoint: CURVE with `secret` as its key pair, or plain."""
        curve = None if secret is None else (server_public or self.server_public, secret)
        return Dealer(self.client_endpoint, curve=curve, send_timeout=REFUSED_WAIT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """An allowed client's GetUser query is answered (so every process is up)."""
        sock = self.client(self.alice_secret)
        msg_ids = itertools.count(101)

        def answered() -> bool:
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited\n" + self.logs()
            return sock.serves(next(msg_ids), 5)

        try:
            assert wait_until(answered, timeout, 0), "node never answered\n" + self.logs()
        finally:
            sock.close()

    def stop(self) -> list[int]:
        """Stop every process; return those still alive afterwards (killed, but reported)."""
        return stop_processes(self.procs.values(), self.seen)


@pytest.fixture
def curve_node(tmp_path):
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

def test_allowed_client_is_served(curve_node, tmp_path):
    """cqrs-client with an allowed key (from the environment), and a pyzmq CURVE client."""
    requests = [
        {"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]},
        {"type": "command", "msg_id": 2, "command": {"type": "CreateUser",
                                                     "payload": {"id": "c-1", "name": "Cy"}}},
        {"type": "query", "msg_id": 3, "query": {"type": "GetUser",
                                                 "params": {"userId": "c-1"}}},
    ]
    env = {**curve_node.base_env, **curve_node.peer_env(curve_node.alice_secret)}
    done = subprocess.run([os.path.join(VENV_BIN, "cqrs-client"), "--connect",
                           curve_node.client_endpoint, "--timeout", "15"],
                          input="".join(json.dumps(r) + "\n" for r in requests).encode(),
                          env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode() + curve_node.logs()
    assert done.stdout.decode().splitlines() == [
        '{"type": "init_ok", "in_reply_to": 1}',
        '{"type": "command_result", "in_reply_to": 2, "success": true, '
        '"events": [{"eventType": "UserCreated", "aggregateId": "c-1"}]}',
        '{"type": "query_result", "in_reply_to": 3, "data": {"id": "c-1", "name": "Cy"}}',
    ]

    sock = curve_node.client(curve_node.alice_secret)
    try:
        assert sock.ask({"type": "GetUser", "msg_id": 3, "params": {"user_id": "user-123"}},
                        15) == SAMPLE_GET
    finally:
        sock.close()
    assert "refused" not in curve_node.stderr("router")


def test_client_with_unknown_key_is_refused(curve_node):
    """A CURVE client whose key is not in the allowed folder gets nothing; the router logs it."""
    rogue = curve_node.client(curve_node.rogue_secret)
    good = curve_node.client(curve_node.alice_secret)
    try:
        assert rogue.ask({"type": "init", "msg_id": 1}, REFUSED_WAIT) is None
        assert rogue.ask({"type": "GetUser", "msg_id": 3,
                          "params": {"user_id": "user-123"}}, REFUSED_WAIT) is None
        assert good.ask({"type": "GetUser", "msg_id": 3, "params": {"user_id": "user-123"}},
                        15) == SAMPLE_GET  # the node is up: the silence is the refusal
    finally:
        rogue.close()
        good.close()
    key = public_text(curve_node.rogue_public)
    refused = f"refused CURVE key {key} on the client endpoint: it is in no role's folder"
    assert wait_until(lambda: refused in curve_node.stderr("router"), 10), curve_node.logs()
    assert curve_node.stderr("router").count(refused) == 1  # once per peer
    assert public_text(curve_node.alice_public) not in curve_node.stderr("router")


def test_client_without_keys_is_refused(curve_node):
    """A client that does not speak CURVE at all is refused: a failed handshake, logged."""
    plain = curve_node.client()
    try:
        assert plain.ask({"type": "init", "msg_id": 1}, REFUSED_WAIT) is None
    finally:
        plain.close()
    assert wait_until(lambda: "refused a connection on the client endpoint"
                      in curve_node.stderr("router"), 10), curve_node.logs()
    refusals = [line for line in curve_node.stderr("router").splitlines() if "refused" in line]
    assert refusals and all("handshake" in line for line in refusals), refusals
    assert not any("code" in line for line in refusals), refusals  # words, not numbers


def test_client_with_wrong_server_key_gets_nothing(curve_node):
    """A client that trusts another server key cannot talk to this node."""
    sock = curve_node.client(curve_node.alice_secret, server_public=curve_node.rogue_public)
    try:
        assert sock.ask({"type": "init", "msg_id": 1}, REFUSED_WAIT) is None
    finally:
        sock.close()


def test_replica_with_unknown_key_never_becomes_ready(curve_node):
    """A read replica with a key that is not allowed is refused by the router and the write
    side, never shows up as a read process, and never answers a query."""
    probe = curve_node.client(curve_node.alice_secret)
    try:
        good = curve_node.procs["read"].pid
        rogue = curve_node.start("rogue", "read_side", curve_node.peer_env(curve_node.rogue_secret))
        key = public_text(curve_node.rogue_public)
        refused = f"refused CURVE key {key} on the read endpoint: it is in no role's folder"
        assert wait_until(lambda: refused in curve_node.stderr("router"), 20), curve_node.logs()
        refused = f"refused CURVE key {key} on the events endpoint: it is in no role's folder"
        assert wait_until(lambda: refused in curve_node.stderr("write"), 20), curve_node.logs()

        reads = processes(probe, "read", msg_id=1, timeout=15)
        assert list(reads) == [good], reads
        assert rogue.poll() is None, curve_node.stderr("rogue")  # refused, not crashed

        # Without the good replica, nothing answers queries: they fail at the deadline.
        curve_node.procs["read"].terminate()
        curve_node.procs["read"].wait(15)
        reply = probe.ask({"type": "GetUser", "msg_id": 2, "params": {"user_id": "user-123"}},
                          15)
        assert reply is not None, curve_node.logs()
        body = json.loads(reply)
        assert body["type"] == "error" and body["code"] in (0, 11), body
        reads = processes(probe, "read", msg_id=3, timeout=15)
        assert reads == {}, reads
        assert rogue.poll() is None
    finally:
        probe.close()
