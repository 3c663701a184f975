"""Starts the back-end processes, restarts any that dies (with backoff), stops them all at exit.

A child that cannot run (FATAL_EXIT) or that is in a crash loop (common.backoff.Restarts)
is not restarted: `fatal` then says why, and the launcher ends the node with status 1.
An optional child (the monitor) is not restarted either then, but the node goes on: its
failure never stops the node."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from common import config, runtime
from common.backoff import Restarts
from common.config import FATAL_EXIT

log = logging.getLogger("supervisor")


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restart_policy: Restarts = field(default_factory=Restarts)
    restart_at: float | None = None
    restarts: int = 0
    optional: bool = False  # its end is logged, never fatal to the node


class Supervisor:
    def __init__(self, cwd: str, runtime_dir: str = "") -> None:
        self.cwd = cwd
        self.runtime_dir = runtime_dir
        self.children: list[Child] = []
        self.stopping = False
        self.fatal = ""  # why the node cannot run: a child said so, or kept crashing
        # For common.lifeline: whom to die with, and what to clean up then.
        self.env = config.child_env(os.environ, os.getpid(), runtime_dir)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [cwd, self.env.get("PYTHONPATH")]))

    def start(self, name: str, module: str, args: list[str], optional: bool = False) -> Child:
        child = Child(name, [sys.executable, "-m", module, *args], optional=optional)
        self.children.append(child)
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        # stdout goes to our stderr: the protocol's stdout is the router's alone.
        child.proc = subprocess.Popen(child.argv, cwd=self.cwd, env=self.env,
                                      stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno())
        child.started = time.monotonic()
        child.restart_at = None

    def tick(self) -> list[int]:
        """Reap children that exited (returning their pids) and restart those whose backoff is over."""
        exited = []
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                exited.append(child.proc.pid)
                self._schedule_restart(child, now)
            if child.restart_at is not None and now >= child.restart_at and not self.stopping:
                child.restarts += 1
                log.warning("restarting %s (restart %d)", child.name, child.restarts)
                self._spawn(child)
        return exited

    def _schedule_restart(self, child: Child, now: float) -> None:
        log.warning("%s (pid %d) exited with status %s", child.name, child.proc.pid,
                    child.proc.returncode)
        if child.optional and child.proc.returncode == FATAL_EXIT:
            log.error("not restarting %s: it cannot run; the node goes on without it", child.name)
            child.proc = None
            return
        if child.proc.returncode == FATAL_EXIT:
            self.fatal = runtime.read_fatal(self.runtime_dir) or f"{child.name} cannot run"
            child.proc = None
            return
        delay = child.restart_policy.died(now, now - child.started)
        child.proc = None
        if delay is None:
            reason = child.restart_policy.reason(child.name)
            log.error("not restarting %s again: %s", child.name, reason)
            if child.optional:
                return  # the node goes on without it
            self.fatal = self.fatal or reason  # the first cause is the one to report
            return
        child.restart_at = now + delay

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.children if c.proc is not None]

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM every child, wait up to `grace` seconds, then SIGKILL what is left."""
        self.stopping = True
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
