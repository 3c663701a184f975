"""Run a command and start it again whenever it dies, with backoff: for Procfile process types.

    python -m common.keepalive python -m read_side

Honcho (like Foreman) stops every process once one exits, so a read replica
or a write side that crashes would take the whole node down with it. Under
this wrapper it comes back instead. A clean exit (0), the fatal status of a
child that cannot run (78), or SIGTERM/SIGINT to the wrapper end it.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from common.config import FATAL_EXIT

FIRST_BACKOFF, MAX_BACKOFF, STABLE_AFTER = 0.05, 2.0, 10.0


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: python -m common.keepalive COMMAND [ARGS...]\n")
        return 2
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff = FIRST_BACKOFF
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv)
        status = child.wait()
        if stopping or status in (0, FATAL_EXIT):
            return status
        backoff = FIRST_BACKOFF if time.monotonic() - started > STABLE_AFTER else backoff
        sys.stderr.write(f"keepalive: {argv[-1]} (pid {child.pid}) exited with status {status}; "
                         f"restarting in {backoff:.2f} s\n")
        time.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
