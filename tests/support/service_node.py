"""A node in service mode started process by process (router, write side, read replicas, each
`python -m <module>` with its own stderr file), for tests that attack one of them or watch it:
their pids, their logs, a probe that proves the node still serves, the counters `stats`
shows, and a teardown that leaves nothing running.

Unlike the Procfile under honcho (tests/e2e/test_procfile.py), nothing here restarts a
process: a process that dies stays dead, so a test sees it.
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.support import envelope
from tests.support.dealer import Dealer
from tests.support.nodeproc import wait_until
from tests.support.service import role_endpoints, service_env, start_module, stop_processes
from tests.support.stats import stats

# The modules of the three process types, by the names the tests give them.
MODULES = {"router": "router", "write": "write_side", "read": "read_side"}
# The endpoints each binds (tests/support/service.py's roles).
BINDS = {"router": ("CLIENT", "WRITE", "READ"), "write": ("EVENTS", "CATCHUP")}


class ServiceNode:
    """Router, write side and read replicas on loopback TCP endpoints of the test's own.

    env: extra variables for every process (CURVE settings go per process: start(env=...)).
    curve: (server public key file, client secret key file) that probes and clients use."""

    def __init__(self, tmp_path: Path, env: dict | None = None,
                 curve: tuple[str, str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.endpoints = role_endpoints()
        self.client_endpoint = self.endpoints["CLIENT"]
        self.data_dir = tmp_path / "data"
        self.base_env = {**service_env(self.endpoints, self.data_dir), **(env or {})}
        self.curve = curve
        self.procs: dict[str, subprocess.Popen] = {}
        self.seen: set[int] = set()
        self._ids = itertools.count(900_000_000)

    # -- processes -------------------------------------------------------------------------
    def start(self, name: str, module: str | None = None,
              env: dict | None = None) -> subprocess.Popen:
        """`python -m <module>` (the module of `name` by default) with the node's environment
        plus `env`; its stderr in <tmp>/<name>.err."""
        proc = start_module(module or MODULES[name], {**self.base_env, **(env or {})},
                            self.tmp_path, self.tmp_path / f"{name}.err")
        self.procs[name] = proc
        self.seen.add(proc.pid)
        return proc

    def start_all(self, env_for: dict[str, dict] | None = None) -> None:
        """Router, write side and one read replica; env_for: extra variables per name.

        Each starts once the one before listens on its ports: a peer started earlier would
        reconnect every few milliseconds, each time from a new ephemeral port, and one of
        those could take a port picked for an endpoint before its process binds it."""
        env_for = env_for or {}
        for name in ("router", "write", "read"):
            proc = self.start(name, env=env_for.get(name))
            ports = [int(self.endpoints[role].rsplit(":", 1)[1]) for role in BINDS.get(name, ())]
            assert wait_until(lambda: proc.poll() is not None or all(map(listening, ports)),
                              30, 0.02), f"{name} never listened on {ports}\n{self.logs()}"
            assert proc.poll() is None, f"{name} exited while starting\n{self.logs()}"

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def stderr(self, name: str) -> str:
        path = self.tmp_path / f"{name}.err"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 2000) -> str:
        return "\n".join(f"--- {name} (pid {proc.pid}, exit {proc.poll()})\n"
                         f"{self.stderr(name)[-tail:]}" for name, proc in self.procs.items())

    def dead(self, names: list[str] | None = None) -> list[str]:
        """The named processes (all by default) that have exited, with their status."""
        return [f"{name} (pid {self.procs[name].pid}) exited with status "
                f"{self.procs[name].poll()}"
                for name in (names or list(self.procs)) if self.procs[name].poll() is not None]

    def assert_alive(self, pids: dict[str, int], after: str) -> None:
        """Every process still runs, with the same pid as before."""
        assert self.pids() == pids, f"after {after}: the processes changed: {pids} -> {self.pids()}"
        dead = self.dead(list(pids))
        assert not dead, f"after {after}: {'; '.join(dead)}\n{self.logs()}"

    def stop(self) -> list[int]:
        """Stop every process; return those still alive afterwards (killed, but reported)."""
        return stop_processes(self.procs.values(), self.seen)

    # -- talking to it ---------------------------------------------------------------------
    def client(self, curve: tuple[str, str] | None = None, send_timeout: float = 10.0) -> Dealer:
        """A DEALER on the client endpoint, with the node's client keys unless given others."""
        return Dealer(self.client_endpoint, curve=curve or self.curve, send_timeout=send_timeout)

    def next_id(self) -> int:
        return next(self._ids)

    def probe(self, timeout: float = 15.0) -> str | None:
        """A fresh client's command and query (see probe below): None if served right."""
        return probe(self.client_endpoint, self.curve, timeout)

    def assert_serves(self, after: str, timeout: float = 15.0) -> None:
        problem = self.probe(timeout)
        assert problem is None, f"after {after}, the node does not serve: {problem}\n{self.logs()}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        """The probe succeeds (router, write side and a read side are up)."""
        problems: list[str | None] = []

        def served() -> bool:
            dead = self.dead()
            assert not dead, f"{'; '.join(dead)} while starting\n{self.logs()}"
            problems.append(self.probe(5.0))
            return problems[-1] is None

        assert wait_until(served, timeout, 0.1), \
            f"node never served: {problems[-1:]}\n{self.logs()}"

    def stats(self, timeout: float = 15.0) -> dict:
        client = self.client()
        try:
            return stats(client, self.next_id(), timeout)
        finally:
            client.close()

    def process_counters(self, role: str) -> dict:
        """The counters of the one process of this role (the newest if several), {} if none."""
        found = [p for p in self.stats()["processes"] if p["role"] == role]
        return found[-1]["counters"] if found else {}


_probes = itertools.count(1)
_probe_ids = itertools.count(910_000_000)


def probe(endpoint: str, curve: tuple[str, str] | None = None,
          timeout: float = 15.0) -> str | None:
    """A fresh client writes a new user and reads it back (a command, then a query);
    None if both were answered right, else what went wrong."""
    n = next(_probes)
    uid, name = f"probe-{os.getpid()}-{n}-{time.monotonic_ns()}", f"Probe {n}"
    client = Dealer(endpoint, curve=curve, send_timeout=timeout)
    try:
        m = next(_probe_ids)
        command = client.ask(envelope.create(uid, name, msg_id=m), timeout)
        if command is None:
            return f"probe command got no reply within {timeout} s"
        expected = {"type": "command_result", "in_reply_to": m, "success": True,
                    "events": [{"eventType": "UserCreated", "aggregateId": uid}]}
        if json.loads(command) != expected:
            return f"probe command: {command!r}"
        m = next(_probe_ids)
        query = client.ask(envelope.get_user(uid, msg_id=m), timeout)
        if query is None:
            return f"probe query got no reply within {timeout} s"
        if json.loads(query) != {"type": "query_result", "in_reply_to": m,
                                 "data": {"id": uid, "name": name}}:
            return f"probe query: {query!r}"
        return None
    finally:
        client.close()


def listening(port: int) -> bool:
    """Whether some process listens on this TCP port (from /proc/net/tcp and tcp6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def rss_mb(pid: int) -> float:
    """The process's resident set (VmRSS) in MiB, 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def running_node(tmp_path: Path, env_for: dict[str, dict] | None = None,
                 **kwargs) -> Iterator[ServiceNode]:
    """A ServiceNode (router, write side, one read replica) that serves; every process is
    stopped at the end, and one still running after that fails the test."""
    node = ServiceNode(tmp_path, **kwargs)
    try:
        node.start_all(env_for)
        node.wait_ready()
        yield node
    finally:
        left = node.stop()
    assert not left, f"processes left running: {left}"
