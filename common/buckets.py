"""Histograms carried as plain integer counters, the only figures a back-end's status Report
holds (common.wire checks that its counters map names to integers).

A histogram named `h` with bounds b1 < b2 < ... is the counters `h_le_<b>` (how many values
were at most b and above the bound before: not cumulative), `h_count` (all values, so the
ones above the last bound are h_count minus the rest) and `h_sum`. Values are integers in
the unit the name says (commit_us: microseconds). The write side writes them; the monitor
reads them back (`read`) and turns them into Prometheus histograms.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

# Commands in one write-side batch (the write side takes at most 2,048 per batch).
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
# Microseconds one batch takes to decide and commit (its transaction and sync included).
COMMIT_MICROSECONDS = (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
                       250_000, 500_000, 1_000_000, 2_500_000)


class FlatHistogram:
    def __init__(self, name: str, bounds: tuple[int, ...]) -> None:
        self.name = name
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last: above every bound
        self.sum = 0

    def observe(self, value: int) -> None:
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def counters(self) -> dict[str, int]:
        out = {f"{self.name}_le_{b}": n for b, n in zip(self.bounds, self.buckets)}
        out[f"{self.name}_count"] = sum(self.buckets)
        out[f"{self.name}_sum"] = self.sum
        return out


class Histogram(NamedTuple):
    bounds: list[int]
    buckets: list[int]  # one per bound, then the values above the last bound
    count: int
    sum: int


def read(counters: dict, name: str) -> Histogram | None:
    """The histogram `name` from a Report's counters; None when they hold none (an older
    process, or another role)."""
    prefix = f"{name}_le_"
    pairs = sorted((int(key[len(prefix):]), value) for key, value in counters.items()
                   if key.startswith(prefix) and key[len(prefix):].isdigit())
    count = counters.get(f"{name}_count")
    if not pairs or not isinstance(count, int):
        return None
    below = [n for _, n in pairs]
    return Histogram([b for b, _ in pairs], below + [max(0, count - sum(below))], count,
                     int(counters.get(f"{name}_sum", 0)))
