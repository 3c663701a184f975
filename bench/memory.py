"""Memory of a node's whole process tree, read from /proc (Linux)."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

KB_PER_MB = 1024.0


def _stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, session id) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces or ')': split after the last one.
    fields = text[text.rindex(b")") + 2:].split()
    return int(fields[1]), int(fields[3])  # state, ppid, pgrp, session: ppid and session


def tree_pids(root: int) -> list[int]:
    """The root process, every process in its session, and every descendant of it.

    The driver starts each node in its own session, so the session holds all of its
    processes; descendants are added too in case one started a session of its own.
    """
    parents: dict[int, int] = {}
    members = {root}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = _stat(entry)
        if info is None:
            continue
        pid, (ppid, sid) = int(entry), info
        parents[pid] = ppid
        if sid == root:
            members.add(pid)
    for pid in parents:
        if _descends(pid, root, parents):
            members.add(pid)
    return sorted(p for p in members if p in parents)


def _descends(pid: int, root: int, parents: dict[int, int]) -> bool:
    seen = set()
    while pid in parents and pid not in seen:
        if pid == root:
            return True
        seen.add(pid)
        pid = parents[pid]
    return False


def _status_kb(pid: int, keys: tuple[str, ...]) -> dict[str, int]:
    """The named kB fields of /proc/PID/status; missing ones (a zombie, a gone process) are 0."""
    found = dict.fromkeys(keys, 0)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in found:
                    found[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return found


@dataclass(frozen=True)
class TreeMemory:
    """Summed memory of a process tree, in MB."""

    peak_mb: float      # sum of each process's own peak resident set (VmHWM)
    current_mb: float   # sum of the resident sets right now (VmRSS)
    processes: int


def tree_memory(root: int) -> TreeMemory:
    """Memory of root's process tree; read it before the processes exit (peaks die with them)."""
    pids = tree_pids(root)
    fields = [_status_kb(p, ("VmHWM", "VmRSS")) for p in pids]
    return TreeMemory(sum(f["VmHWM"] for f in fields) / KB_PER_MB,
                      sum(f["VmRSS"] for f in fields) / KB_PER_MB, len(pids))


class RssSampler:
    """Samples a tree's total current RSS from a thread; max_mb is the largest sum seen."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root = root
        self.interval = interval
        self.max_mb = 0.0
        self.samples = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.sample()  # one last look, so a short run still has a sample at its end

    def sample(self) -> None:
        """Take one sample now."""
        self.max_mb = max(self.max_mb, tree_memory(self.root).current_mb)
        self.samples += 1

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()
