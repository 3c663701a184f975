"""Make a child process die with its launcher, so no process of the node outlives it.

The launcher names itself in the child's environment (so a child whose launcher
died while it was still starting notices too) with its runtime folder (so the last
child out removes a folder its launcher left): see config.child_env.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import threading
import time

from common import config

_PR_SET_PDEATHSIG = 1
WATCH_EVERY = 0.2
GRACE = 1.0  # after asking itself to stop, a child exits hard if still running


def die_with_parent() -> None:
    """SIGTERM from the kernel when the parent dies, a watcher thread as a fallback,
    and removal of an orphaned runtime folder at exit."""
    parent = config.value("launcher_pid") or os.getppid()
    folder = config.value("runtime_dir")
    # Until the process installs its own handler, SIGTERM means a clean, immediate exit.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    atexit.register(_remove_orphaned_folder, folder)
    signal_on_parent_death(signal.SIGTERM)  # where it is not available, the watcher works

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_EVERY)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACE)
        _remove_orphaned_folder(folder)
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def signal_on_parent_death(signum: int) -> bool:
    """Ask the kernel to send `signum` to this process when its parent dies (Linux);
    False where that cannot be asked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _remove_orphaned_folder(folder: str) -> None:
    if folder:
        from common import runtime

        runtime.remove_if_orphaned(folder)
