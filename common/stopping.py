"""SIGTERM/SIGINT as a flag plus a file descriptor that a poller can wait on.

A signal alone does not end a zmq poll early (pyzmq resumes the poll after
running the handler), so the handler's wake-up byte lands on a pipe that the
process's poller watches: stopping then takes no longer than one loop turn.
"""
from __future__ import annotations

import os
import signal
from typing import Callable


class StopSignal:
    def __init__(self, on_stop: Callable[[int], None] | None = None) -> None:
        self.requested = False
        self._on_stop = on_stop
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.requested = True
        if self._on_stop is not None:
            self._on_stop(signum)

    def clear(self) -> None:
        """Empty the wake-up pipe (call when the poller reports it readable)."""
        drain_pipe(self.fd)


def drain_pipe(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
