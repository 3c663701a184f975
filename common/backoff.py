"""When to restart a process that died, and when to stop trying: one rule for the launcher's
supervisor (router.supervisor) and for service mode (common.keepalive)."""
from __future__ import annotations

from collections import deque

FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0
STABLE_AFTER = 10.0  # a process that ran this long starts its next backoff from the beginning
# A process that dies this many times within CRASH_WINDOW seconds is not restarted again:
# it will not get better by itself, and restarting it for ever would hide the failure
# behind a node that looks alive (issue 12 item 5, no silent crash loops).
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0


class Backoff:
    """FIRST_BACKOFF, doubled after each restart up to MAX_BACKOFF: a process that dies at
    once is not restarted in a busy loop, and one that died after running well comes back
    quickly."""

    def __init__(self, first: float = FIRST_BACKOFF, most: float = MAX_BACKOFF,
                 stable_after: float = STABLE_AFTER) -> None:
        self.first, self.most, self.stable_after = first, most, stable_after
        self.delay = first

    def next(self, ran_for: float) -> float:
        """The delay before restarting a process that died after `ran_for` seconds."""
        if ran_for > self.stable_after:
            self.delay = self.first
        delay = self.delay
        self.delay = min(delay * 2, self.most)
        return delay


class Restarts:
    """The restart policy of one process: a backoff between restarts, and a crash loop
    (CRASH_LIMIT deaths within CRASH_WINDOW seconds) ends the restarts for good.

    Times are monotonic seconds given by the caller, so the rule is the same whatever
    clock or loop drives it (and can be checked with made-up times)."""

    def __init__(self, limit: int = CRASH_LIMIT, window: float = CRASH_WINDOW,
                 backoff: Backoff | None = None) -> None:
        self.limit, self.window = limit, window
        self.backoff = backoff if backoff is not None else Backoff()
        self.deaths: deque[float] = deque()

    def died(self, now: float, ran_for: float) -> float | None:
        """Record a death at `now` of a process that ran `ran_for` seconds: the delay before
        restarting it, or None when this death completes a crash loop (do not restart)."""
        self.deaths.append(now)
        while self.deaths and self.deaths[0] <= now - self.window:
            self.deaths.popleft()
        if len(self.deaths) >= self.limit:
            return None
        return self.backoff.next(ran_for)

    def reason(self, name: str) -> str:
        """Why `name` is not restarted again, for the log and for error 11 replies."""
        return f"{name} crashed {self.limit} times within {self.window:g} s; see stderr"
