"""Starts a node command as a subprocess on a fresh data folder and moves lines in and out."""
from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from common import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_NAME = "main"
BASELINE_NAME = "baseline"
PG_NAME = "main-pg"  # this repo's node on PostgreSQL (bench.postgres)
_ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# The store URL's variable, by its setting's name: common.config alone spells the variables.
STORE_VAR = config.setting("store").var


class NodeError(RuntimeError):
    """The node died, refused to start or stopped answering."""


class NotApplicable(Exception):
    """A workload does not apply to this node (it lacks a capability); reported as n/a."""


@dataclass
class NodeSpec:
    """A named node command line: how to start one implementation."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Cleared by probe() when the node rejects --data-dir; then it keeps its own store.
    data_dir_flag: bool = True
    # Capabilities: None until probe() or the spec's maker says; False makes workloads n/a.
    durable: bool | None = None        # keeps its data across a restart on the same folder
    read_replicas: bool | None = None  # takes --read-replicas N
    # A PostgreSQL store: each node started gets a database of its own there, named in
    # CQRS_STORE (bench.postgres.Databases); None: the node's store is its data folder's.
    databases: Any = None

    def describe(self) -> str:
        """The command as a shell would show it."""
        store = ({STORE_VAR: f"{self.databases.url('<fresh database>')}"}
                 if self.databases is not None else {})
        words = [f"{k}={v}" for k, v in {**store, **self.env}.items()] + self.argv
        return " ".join(shlex.quote(w) for w in words)


def default_spec(name: str = DEFAULT_NAME) -> NodeSpec:
    """This repository's node, under the interpreter running the harness."""
    return NodeSpec(name, [sys.executable, os.path.join(ROOT, "run_node.py")])


def baseline_spec(name: str = BASELINE_NAME) -> NodeSpec:
    """The in-memory single-process baseline (bench/baseline.py); it has no replicas."""
    return NodeSpec(name, [sys.executable, "-m", "bench.baseline"], read_replicas=False)


def postgres_spec(name: str = "main-pg", server: str | None = None) -> NodeSpec:
    """This repository's node on a PostgreSQL store: a database of its own for each node
    started, on `server` (a URL) or on a throw-away cluster this run starts (bench.postgres);
    bench.postgres.Unavailable where there is none."""
    from bench import postgres

    spec = default_spec(name)
    spec.databases = postgres.Databases(server) if server else postgres.throwaway_server()
    return spec


def baseline_available() -> bool:
    """True when bench/baseline.py is there to run."""
    return os.path.exists(os.path.join(ROOT, "bench", "baseline.py"))


def parse_spec(command: str, name: str) -> NodeSpec:
    """A spec from a shell-like string; leading VAR=value words become its environment.

    A first word 'main' or 'baseline' stands for that node's command, so
    'CQRS_SYNC=normal main' or 'main --sync normal' are variants of this repo's node;
    'main-pg' is this repo's node on a throw-away PostgreSQL cluster. With
    CQRS_STORE=postgresql://... the node runs on that server instead, each node started on
    a fresh database made there beside the one named (and dropped after).
    """
    words = shlex.split(command)
    env: dict[str, str] = {}
    while words and _ENV_WORD.match(words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if not words:
        raise ValueError(f"no program in node command {command!r}")
    server = env.pop(STORE_VAR) if env.get(STORE_VAR, "").startswith(
        ("postgresql://", "postgres://")) else None
    makers = {DEFAULT_NAME: default_spec, BASELINE_NAME: baseline_spec,
              PG_NAME: postgres_spec}
    if words[0] in makers:
        spec = makers[words[0]](name)
        spec.argv += words[1:]
        spec.env.update(env)
    else:
        spec = NodeSpec(name, words, env)
    if server:
        from bench import postgres

        spec.databases = postgres.Databases(server)
    return spec


def remove_data(spec: NodeSpec, folder: str) -> None:
    """A node's data folder, and its database if it has one."""
    if spec.databases is not None:
        spec.databases.drop(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a pipe may take less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class NodeProcess:
    """One running node on its own data folder; replies are read as raw lines.

    Without data_dir the node gets a fresh temporary folder. The folder is removed at stop
    unless keep_data is set (a store built to be reused).
    """

    def __init__(self, spec: NodeSpec, args: Sequence[str] = (), data_dir: str | None = None,
                 keep_data: bool = False) -> None:
        self.spec = spec
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="bench-data-")
        self._keep_data = keep_data
        self._stderr = tempfile.TemporaryFile(prefix="bench-stderr-")
        argv = (list(spec.argv) + list(args)
                + (["--data-dir", self.data_dir] if spec.data_dir_flag else []))
        env = {**os.environ, **spec.env}
        if spec.databases is not None:  # the folder's own database (made with it)
            env[STORE_VAR] = spec.databases.for_folder(self.data_dir)
        self._buf = b""  # bytes read past the lines already handed out
        self.received = 0  # reply lines read from the node so far (a windowed writer waits on it)
        self._progress = threading.Condition()
        self.eof = False
        self._stopped = False
        self.write_error: BaseException | None = None
        self.started = time.perf_counter()
        try:
            # Own session, so a stuck node and its children can be killed as one group.
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, cwd=ROOT, bufsize=0,
                                         env=env, start_new_session=True)
        except OSError:  # no such program: nothing will stop() this node, so tidy up now
            self._stderr.close()
            if not keep_data:
                remove_data(spec, self.data_dir)
            raise

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(kill=exc[0] is not None)

    # -- input ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Write bytes to the node's stdin, all of them."""
        try:
            _write_all(self.proc.stdin.fileno(), data)
        except OSError as exc:
            raise NodeError(f"node stopped reading: {exc}\n{self.stderr_tail()}") from exc

    def write_in_background(self, data: bytes) -> threading.Thread:
        """Write bytes from a thread, so the node's replies can be read meanwhile."""
        def run() -> None:
            try:
                _write_all(self.proc.stdin.fileno(), data)
            except OSError as exc:  # the node died or was killed at the time cap
                self.write_error = exc

        thread = threading.Thread(target=run, name="bench-writer", daemon=True)
        thread.start()
        return thread

    def write_windowed(self, chunks: list[tuple[bytes, int]], window: int) -> threading.Thread:
        """Write (data, request count) chunks from a thread, keeping at most window unanswered.

        A client that writes far ahead only measures the node's queue: requests time out
        in the node before it reaches them. Every earlier request must have been answered.
        """
        def room(sent: int, n: int) -> bool:  # a chunk above the window goes out alone
            return self._stopped or sent + n - self.received <= max(window, n)

        def run() -> None:
            sent = self.received
            try:
                for data, n in chunks:
                    with self._progress:
                        while not self._progress.wait_for(lambda: room(sent, n), 1.0):
                            pass
                    if self._stopped:
                        return
                    _write_all(self.proc.stdin.fileno(), data)
                    sent += n
            except (OSError, ValueError) as exc:  # died, killed at the cap, or stdin closed
                self.write_error = exc

        thread = threading.Thread(target=run, name="bench-window-writer", daemon=True)
        thread.start()
        return thread

    # -- output --------------------------------------------------------------------------
    def read_lines(self, n: int, deadline: float) -> tuple[list[bytes], float]:
        """Up to n reply lines and the perf_counter time the last of them arrived.

        Stops early at the deadline or at end of output; counting newlines in raw chunks
        keeps the harness's own cost per reply tiny.
        """
        fd = self.proc.stdout.fileno()
        chunks, have, t_last = [self._buf], self._buf.count(b"\n"), time.perf_counter()
        while have < n and not self.eof:
            left = deadline - time.perf_counter()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 1 << 20)
            t_last = time.perf_counter()
            if not chunk:
                self.eof = True
            chunks.append(chunk)
            lines = chunk.count(b"\n")
            have += lines
            if lines:
                with self._progress:
                    self.received += lines
                    self._progress.notify_all()
        *complete, partial = b"".join(chunks).split(b"\n")
        self._buf = b"\n".join(complete[n:] + [partial])
        return complete[:n], t_last

    def exchange(self, chunks: list[tuple[bytes, int]], deadline: float,
                 window: int | None = None) -> tuple[list[bytes], float, float]:
        """Pipeline the chunks and read their replies until the deadline.

        Without a window everything is written at once from a thread. Returns the replies
        (fewer when the deadline came first), the time of the first write and of the last
        reply. A node that ends early raises NodeError; one that is too slow is killed.
        """
        total = sum(n for _, n in chunks)
        t0 = time.perf_counter()
        writer = (self.write_windowed(chunks, window) if window else
                  self.write_in_background(b"".join(data for data, _ in chunks)))
        lines, t_last = self.read_lines(total, deadline)
        if len(lines) < total and self.eof:
            raise NodeError(f"node ended after {len(lines)} of {total} replies\n"
                            f"{self.stderr_tail()}")
        if len(lines) < total:
            self.stop(kill=True)  # cut short at the deadline; also ends the writer
        writer.join()
        return lines, t0, t_last

    # -- process -------------------------------------------------------------------------
    def stderr_tail(self, size: int = 2000) -> str:
        """The end of what the node wrote to stderr."""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-size:]

    def exited(self) -> bool:
        """True once the node process has ended."""
        return self.proc.poll() is not None

    def stop(self, kill: bool = False, timeout: float = 30.0) -> int | None:
        """End the node (end of input, or SIGKILL to its group) and remove its data folder."""
        if self._stopped:
            return self.proc.returncode
        with self._progress:
            self._stopped = True
            self._progress.notify_all()  # a windowed writer must not wait for replies now
        try:
            if kill:
                self._kill_group()
            self.proc.stdin.close()
            self._drain(time.perf_counter() + timeout)  # a full stdout pipe would block its exit
            try:
                return self.proc.wait(max(0.1, timeout))
            except subprocess.TimeoutExpired:
                self._kill_group()
                return self.proc.wait()
        finally:
            self.proc.stdout.close()
            self._stderr.close()
            if not self._keep_data:
                remove_data(self.spec, self.data_dir)

    def _drain(self, deadline: float) -> None:
        while not self.eof and time.perf_counter() < deadline:
            self.read_lines(1 << 30, deadline)
            self._buf = b""

    def _kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
