"""Drives a real run_node.py subprocess over stdin/stdout, for end-to-end tests."""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_NODE = os.path.join(ROOT, "run_node.py")
# The virtualenv's python and installed scripts (cqrs-client, cqrs-keys, honcho, ...).
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def descendants(pid: int) -> set[int]:
    """Every live process below pid, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cmdline(pid: int) -> list[bytes]:
    """The process's argv from /proc ([] once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll predicate until it holds or timeout seconds have passed; its last verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def kill_leftovers(pids: set[int], grace: float) -> list[int]:
    """Wait up to `grace` seconds for these processes to end, SIGKILL the rest, and return
    those that had to be killed (so a test can report them)."""
    wait_until(lambda: not any(alive(p) for p in pids), grace, 0.1)
    left = sorted(p for p in pids if alive(p))
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def encode(message: Any) -> bytes:
    """A line's bytes: bytes as they are, a str as UTF-8, anything else as JSON."""
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode()
    return json.dumps(message).encode()


class Node:
    """One node process. Replies are read by a thread into a queue, so reads can time out.

    program: the script to run, run_node.py unless a test drives another implementation
    of the same protocol (bench/baseline.py)."""

    def __init__(self, *args: str, env: dict | None = None, program: str = RUN_NODE) -> None:
        self.stderr_file = tempfile.NamedTemporaryFile(prefix="node-stderr-", delete=False)
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen([sys.executable, program, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     env=full_env, cwd=ROOT)
        self.lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.children_seen: set[int] = set()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    # -- input -------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, *messages: Any) -> None:
        """Write each message (a dict, or a ready-made str/bytes line) as one line."""
        self.send_raw(b"".join(encode(m) + b"\n" for m in messages))

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    # -- output ------------------------------------------------------------------------
    def read_line(self, timeout: float = 10.0) -> str:
        line = self.lines.get(timeout=timeout)
        if line is None:
            raise EOFError("node closed stdout; stderr:\n" + self.stderr()[-2000:])
        return line

    def read(self, timeout: float = 10.0) -> dict:
        return json.loads(self.read_line(timeout))

    def request(self, message: Any, timeout: float = 10.0) -> dict:
        self.send(message)
        return self.read(timeout)

    def read_all(self, timeout: float = 30.0) -> list[str]:
        """Every remaining line until stdout closes."""
        out, deadline = [], time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                return out
            out.append(line)

    # -- process -----------------------------------------------------------------------
    def stderr(self) -> str:
        with open(self.stderr_file.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def events_endpoint(self, timeout: float = 10.0) -> str:
        found: list[str] = []

        def seen() -> bool:
            m = re.search(r"^events endpoint: (\S+)$", self.stderr(), re.M)
            if m:
                found.append(m.group(1))
            return bool(m)

        assert wait_until(seen, timeout), "no 'events endpoint:' line on stderr"
        return found[0]

    def runtime_dir(self) -> str:
        """The private runtime folder, from the events endpoint the node logged."""
        endpoint = self.events_endpoint()
        assert endpoint.startswith("ipc://"), endpoint
        return os.path.dirname(endpoint[len("ipc://"):])

    def children(self) -> set[int]:
        kids = descendants(self.proc.pid)
        self.children_seen |= kids
        return kids

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Make sure nothing is left running (for teardown)."""
        self.children()
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.children_seen:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        os.unlink(self.stderr_file.name)


def run_lines(lines: list[Any], *args: str, timeout: float = 60.0, env: dict | None = None,
              program: str = RUN_NODE) -> tuple[list[str], int, str]:
    """Write all lines, close stdin, collect (reply lines, exit status, stderr)."""
    data = b"".join(encode(m) + b"\n" for m in lines)
    proc = subprocess.run([sys.executable, program, *args], input=data, capture_output=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    out = proc.stdout.decode("utf-8", "replace").splitlines()
    return out, proc.returncode, proc.stderr.decode("utf-8", "replace")


def role_pid(node: Node, module: str) -> int:
    """The pid of the node's single child running `python -m <module>`."""
    def find() -> list[int]:
        return [pid for pid in node.children() if module.encode() in cmdline(pid)]

    assert wait_until(lambda: len(find()) == 1, 20), f"no single {module} child"
    return find()[0]
