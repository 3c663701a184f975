"""Make a child process die with its parent, so no process of the node outlives it."""
from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

_PR_SET_PDEATHSIG = 1
WATCH_EVERY = 0.2
GRACE = 1.0  # after asking itself to stop, a child exits hard if still running


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent dies; a watcher thread backs it up."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the watcher below still works

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_EVERY)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
