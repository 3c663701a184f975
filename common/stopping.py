"""SIGTERM/SIGINT as a flag plus a file descriptor that a poller can wait on.

A signal alone does not end a zmq poll early (pyzmq resumes the poll after
running the handler), so the handler's wake-up byte lands on a pipe that the
process's poller watches: stopping then takes no longer than one loop turn.

A launcher also needs the request before it has anything to poll: `catch_early`,
the first thing run_node.py does, records a stop from that moment on, the launcher
asks `requested()` between its start-up steps, and the StopSignal it makes later
takes over a request recorded before it existed.
"""
from __future__ import annotations

import os
import signal
from typing import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []  # stop signals this process got, in order (process-wide)


def catch_early() -> None:
    """From now on SIGTERM/SIGINT only record a stop request (see requested), instead of
    killing the process (SIGTERM's default) or raising KeyboardInterrupt at any line.

    Also unblocks them: a launcher that re-runs itself under another interpreter blocks
    them across exec (see block_across_exec), so that one arriving while the new
    interpreter starts waits for this handler instead of killing it."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _record)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def block_across_exec() -> None:
    """Hold SIGTERM/SIGINT pending until the next program image calls catch_early: the
    signal mask and pending signals survive exec, handlers do not."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def unblock() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def requested() -> bool:
    """Whether this process has been asked to stop (by a signal caught by catch_early or
    by a StopSignal)."""
    return bool(_received)


def _record(signum: int, _frame: object) -> None:
    _received.append(signum)


class StopSignal:
    def __init__(self, on_stop: Callable[[int], None] | None = None) -> None:
        self.requested = False
        self._on_stop = on_stop
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        if _received:
            # Asked to stop before this object existed (catch_early): act on it now, and
            # wake the poller as the signal itself would have.
            self._handle(_received[0], None)
            os.write(self._write_fd, b"\0")

    def _handle(self, signum: int, _frame: object) -> None:
        _received.append(signum)
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
