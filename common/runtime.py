"""The launcher's private runtime folder (ipc sockets, a throwaway store), and its cleanup.

Each folder holds `launcher.pid`. A folder whose launcher is gone (it was
killed with SIGKILL, say) is removed by the next start on this host, and by
the launcher's children as they exit.
"""
from __future__ import annotations

import glob
import os
import shutil
import tempfile

# Every file and folder a node process creates (store, WAL, snapshot, lock, sockets) is
# its user's alone: a store holds users' data, and a socket in a shared folder would let
# any local user talk to the node.
PRIVATE_UMASK = 0o077
PREFIX = "cqrs-node-"
MARKER = "launcher.pid"
FATAL = "fatal.txt"  # why a child could not run, for the launcher to report


def keep_files_private() -> None:
    """Files this process creates from now on are 0600, folders 0700 (whatever umask it
    inherited). Every node process calls this first thing: run_node.py and each
    `python -m` entry point."""
    os.umask(PRIVATE_UMASK)


def make() -> str:
    """A new private folder (mode 0700) marked with this process's pid."""
    sweep_stale()
    folder = tempfile.mkdtemp(prefix=PREFIX)
    with open(os.path.join(folder, MARKER), "w") as f:
        f.write(str(os.getpid()))
    return folder


def owner(folder: str) -> int | None:
    try:
        with open(os.path.join(folder, MARKER)) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None


def is_running(pid: int) -> bool:
    """True while the process runs; a zombie (killed, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc here: trust kill(0)
    return state not in ("Z", "X")


def remove_if_orphaned(folder: str) -> bool:
    """Remove a marked runtime folder whose launcher no longer runs."""
    pid = owner(folder)
    if pid is None or is_running(pid):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def sweep_stale() -> None:
    for folder in glob.glob(os.path.join(tempfile.gettempdir(), PREFIX + "*")):
        if os.path.isdir(folder) and os.stat(folder).st_uid == os.getuid():
            remove_if_orphaned(folder)


def write_fatal(folder: str, reason: str) -> None:
    if folder and os.path.isdir(folder):
        with open(os.path.join(folder, FATAL), "w") as f:
            f.write(reason)


def read_fatal(folder: str) -> str:
    try:
        with open(os.path.join(folder, FATAL)) as f:
            return f.read().strip()
    except OSError:
        return ""
