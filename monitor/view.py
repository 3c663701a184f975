"""What the monitor knows about the node, shared between its loop thread (which feeds it
events and stats) and the HTTP threads (which read it for the page and /metrics).

Everything here is bounded: the latest stats reply, the processes seen lately, per-second
rates for the last RATE_SAMPLES seconds, the latest RECENT events, event counts by context
and type, and the streams of monitor.streams.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from monitor.sse import Hub
from monitor.streams import StreamHistories, StreamKey, brief

RATE_SAMPLES = 600  # one a second: ten minutes
RECENT = 200  # latest events kept for a page that connects
FRESH_MAX = 100  # new events sent to the pages in one message at most; the rest are skipped
ANSWERED_WITHIN = 3.0  # the router counts as up while its last stats reply is this recent
# A process the router no longer reports (it stopped talking: hung, stopped, or gone) stays
# listed this long, with its last position, so a stalled replica's lag keeps showing.
SILENT_KEPT = 60.0


@dataclass
class Seen:
    """A back-end process as the router last reported it."""
    report: dict
    last_seen: float  # monotonic


@dataclass
class Own:
    """The monitor's own subscription, set by its loop."""
    position: int = 0
    head: int = 0
    ready: bool = False
    counters: dict = field(default_factory=dict)


class NodeView:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hub = Hub()
        self.streams = StreamHistories()
        self.appended: dict[tuple[str, str], int] = {}  # (context, type) -> events
        self.recent: deque[dict] = deque(maxlen=RECENT)
        self._fresh: list[dict] = []
        self._skipped = 0
        self.stats: dict | None = None
        self.stats_at: float | None = None  # monotonic time of the last stats reply
        self.seen: dict[tuple[str, int], Seen] = {}
        self.pids_seen: dict[str, set[int]] = {}  # role -> every pid ever reported
        self.rates: deque[list] = deque(maxlen=RATE_SAMPLES)
        self._totals: tuple | None = None  # (router pid, wall time, commands, queries, head)
        self.own = Own()
        self.pid = os.getpid()

    # ---- fed by the loop thread ---------------------------------------------------------

    def apply_event(self, event: dict) -> None:
        """Every event of the stream, once, in position order (the subscription's callback)."""
        shown = brief(event)
        key = (event["context"], event["type"])
        with self.lock:
            self.appended[key] = self.appended.get(key, 0) + 1
            self.streams.add(event)
            self.recent.append(shown)
            self._fresh.append(shown)
            if len(self._fresh) > FRESH_MAX:
                del self._fresh[0]
                self._skipped += 1

    def replace_stream(self, key: StreamKey, events: list[dict]) -> None:
        with self.lock:
            self.streams.replace(key, events)

    def set_own(self, position: int, head: int, ready: bool, counters: dict) -> None:
        with self.lock:
            self.own = Own(position, head, ready, dict(counters))

    def on_stats(self, data: dict, now: float, wall: float | None = None) -> None:
        """A stats reply from the router: remember it, derive a rate sample, tell the pages."""
        wall = time.time() if wall is None else wall
        with self.lock:
            self.stats, self.stats_at = data, now
            for report in data.get("processes", []):
                key = (report.get("role", "?"), report.get("pid", 0))
                self.seen[key] = Seen(report, now)
                self.pids_seen.setdefault(key[0], set()).add(key[1])
            self.seen = {k: s for k, s in self.seen.items() if now - s.last_seen <= SILENT_KEPT}
            sample = self._rate_sample(data.get("router", {}), wall)
            payload = self._live(now)
        payload["rate"] = sample
        self.hub.publish("stats", payload)

    def _rate_sample(self, router: dict, wall: float) -> list | None:
        """[time in ms, commands/s, queries/s, events/s] since the previous reply; None for
        the first reply of a router (its counters start again from zero)."""
        answered = router.get("answered", {})
        totals = (router.get("pid"), wall, sum(answered.get("command", {}).values()),
                  sum(answered.get("query", {}).values()), router.get("head", 0))
        previous, self._totals = self._totals, totals
        if previous is None or previous[0] != totals[0] or totals[1] <= previous[1]:
            return None
        seconds = totals[1] - previous[1]
        sample = [int(wall * 1000)] + [round(max(0, now - then) / seconds, 2)
                                       for now, then in zip(totals[2:], previous[2:])]
        self.rates.append(sample)
        return sample

    def flush_events(self) -> None:
        """Send the events that arrived since the last call to the pages, in one message."""
        with self.lock:
            fresh, skipped = self._fresh, self._skipped
            self._fresh, self._skipped = [], 0
        if fresh:
            self.hub.publish("events", {"events": fresh, "skipped": skipped})

    # ---- read by the HTTP threads -------------------------------------------------------

    def up(self, now: float) -> bool:
        return self.stats_at is not None and now - self.stats_at <= ANSWERED_WITHIN

    def head(self) -> int:
        router_head = (self.stats or {}).get("router", {}).get("head", 0)
        return max(router_head, self.own.head)

    def processes(self, now: float) -> list[dict]:
        """Every process: the router, the back-ends it reports, those it stopped reporting
        lately (with their last position), and this monitor. Call with the lock held."""
        stats = self.stats or {}
        router = stats.get("router", {})
        up = self.up(now)
        head = self.head()
        rows = []
        if router:
            rows.append(_row("router", router.get("pid", 0), up, router.get("head", 0), 0, up,
                             0.0, {k: v for k, v in router.items() if isinstance(v, int)}))
        for (role, pid), seen in sorted(self.seen.items()):
            report = seen.report
            silent = now - seen.last_seen
            reporting = up and seen.last_seen == self.stats_at  # in the latest reply
            position = report.get("position", 0)
            # The router's own lag while it reports the process; once it does not, the
            # lag behind today's head of the last position it had.
            lag = report.get("lag", 0) if reporting else max(0, head - position)
            if role == "write":
                lag = 0  # the head's source: its position only trails by its status interval
            rows.append(_row(role, pid, report.get("ready", False) and reporting, position,
                             lag, reporting, 0.0 if reporting else silent,
                             report.get("counters", {})))
        own = self.own
        rows.append(_row("monitor", self.pid, own.ready, own.position,
                         max(0, head - own.position), True, 0.0, own.counters))
        return rows

    def _live(self, now: float) -> dict:
        """What the page shows besides events (lock held)."""
        router = (self.stats or {}).get("router", {})
        return {"time": int(time.time() * 1000), "up": self.up(now), "head": self.head(),
                "router": router, "processes": self.processes(now),
                "appended": [{"context": c, "type": t, "count": n}
                             for (c, t), n in sorted(self.appended.items())]}

    def snapshot(self, now: float) -> dict:
        """Everything a page needs when it (re)connects."""
        with self.lock:
            payload = self._live(now)
            payload["rates"] = list(self.rates)
            payload["events"] = list(self.recent)
        return payload

    def stream(self, key: StreamKey):
        with self.lock:
            return self.streams.get(key)

    def recent_streams(self, context: str, prefix: str) -> list[dict]:
        with self.lock:
            return self.streams.recent(context, prefix)


def _row(role: str, pid: int, ready: bool, position: int, lag: int, reporting: bool,
         silent_for: float, counters: dict) -> dict:
    return {"role": role, "pid": pid, "ready": bool(ready), "position": position, "lag": lag,
            "reporting": reporting, "silent_for": round(silent_for, 1), "counters": counters}
