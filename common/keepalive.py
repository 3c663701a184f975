"""Run a command and start it again whenever it dies, with backoff: for Procfile process types.

    python -m common.keepalive python -m read_side

Honcho (like Foreman) stops every process once one exits, so a router, a read
replica or a write side that crashes would take the whole node down with it.
Under this wrapper it comes back instead. It ends with:

  0   SIGTERM/SIGINT to the wrapper (passed on to the command, which stops cleanly),
      or the command exiting 0 on its own;
  78  the command's fatal status (FATAL_EXIT: it cannot run with its settings or storage);
  1   a crash loop: the command died CRASH_LIMIT times within CRASH_WINDOW seconds
      (common.backoff), which restarting will not cure; the reason is on stderr.
"""
from __future__ import annotations

import select
import signal
import subprocess
import sys
import time

from common.backoff import Restarts
from common.config import FATAL_EXIT
from common.stopping import STOP_SIGNALS, StopSignal


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: python -m common.keepalive COMMAND [ARGS...]\n")
        return 2
    name = argv[-1]
    child: subprocess.Popen | None = None

    def pass_on(signum: int) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    stop = StopSignal(on_stop=pass_on)
    restarts = Restarts()
    while not stop.requested:
        started = time.monotonic()
        child = subprocess.Popen(argv)
        if stop.requested:
            # The signal came while the child was being started, before pass_on could see it.
            child.send_signal(signal.SIGTERM)
        status = child.wait()
        if stop.requested:
            return _stopped_status(status)
        if status in (0, FATAL_EXIT):
            return status
        now = time.monotonic()
        delay = restarts.died(now, now - started)
        if delay is None:
            sys.stderr.write(f"keepalive: {name} (pid {child.pid}) exited with status {status}; "
                             f"not restarting it: {restarts.reason(name)}\n")
            return 1
        sys.stderr.write(f"keepalive: {name} (pid {child.pid}) exited with status {status}; "
                         f"restarting in {delay:.2f} s\n")
        # Not time.sleep: a stop during the backoff must end the wait at once, and must
        # not be followed by one more start.
        select.select([stop.fd], [], [], delay)
    return 0


def _stopped_status(status: int) -> int:
    """The wrapper's status once asked to stop: 0 when the command stopped as asked (cleanly,
    or killed by the signal passed on before it could install its own handler)."""
    if status == 0 or -status in STOP_SIGNALS:
        return 0
    return status if status > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
