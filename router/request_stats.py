"""Requests answered by kind and outcome, and how long a back-end took to answer them.

Counted in the router, the one process that sees every request from the moment it is read
to the moment its answer is known, and shown in `stats` (the monitor turns them into
Prometheus counters and histograms). The cost per request is a few integer increments:
a latency is one bisection into a short tuple of bucket bounds, never a stored sample.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Any

from common.errors import CRASH, MALFORMED, NOT_SUPPORTED, TIMEOUT, UNAVAILABLE

# Upper bounds, in seconds, of the latency buckets (a last bucket holds everything above):
# from a sub-millisecond answer to the default deadline and past it.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                  5.0, 10.0)
TIMED_KINDS = ("command", "query")  # answered by a back-end: their latency is measured
# An error reply's outcome, by its code (common.errors); any other code is "error".
ERROR_OUTCOMES = {TIMEOUT: "timeout", NOT_SUPPORTED: "not_supported",
                  UNAVAILABLE: "unavailable", MALFORMED: "malformed", CRASH: "crash"}


def outcome(body: Any) -> str:
    """ok, rejected (a command whose rules said no), or the error's name."""
    if type(body) is not dict:
        return "ok"  # a query result, already rendered as text by the read side
    if body.get("type") == "error":
        return ERROR_OUTCOMES.get(body.get("code"), "error")
    return "ok" if body.get("success", True) else "rejected"


class RequestStats:
    def __init__(self) -> None:
        # kind -> outcome -> count. Kinds: command, query, init, stats, and invalid (a line
        # answered with an error before it could be told what it asked).
        self.answered: dict[str, dict[str, int]] = {}
        self.buckets = {kind: [0] * (len(LATENCY_BOUNDS) + 1) for kind in TIMED_KINDS}
        self.seconds = {kind: 0.0 for kind in TIMED_KINDS}

    def count(self, kind: str, result: str) -> None:
        counts = self.answered.setdefault(kind, {})
        counts[result] = counts.get(result, 0) + 1

    def answered_after(self, kind: str, body: Any, elapsed: float) -> None:
        """A command or query answered `elapsed` seconds after it was read."""
        self.count(kind, outcome(body))
        self.buckets[kind][bisect_left(LATENCY_BOUNDS, elapsed)] += 1
        self.seconds[kind] += elapsed

    def as_dict(self) -> dict:
        """For stats: counts per kind and outcome; per timed kind the count in each bucket
        (not cumulative: bucket i holds latencies up to bounds[i], the last one the rest)
        and the sum of the latencies in seconds."""
        return {"answered": {kind: dict(counts) for kind, counts in self.answered.items()},
                "latency": {"bounds": list(LATENCY_BOUNDS),
                            **{kind: {"buckets": list(self.buckets[kind]),
                                      "sum": self.seconds[kind]} for kind in TIMED_KINDS}}}
