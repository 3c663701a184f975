"""The performance targets, in one place (2-core machine, durable store, sync on)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A bound on a metric's median, optionally also a least ratio to the baseline."""

    limit: float
    better: str                   # "higher": median >= limit; "lower": median <= limit
    ratio: float | None = None    # least ratio to the baseline (ratios are >1 when better)
    full_size_only: bool = False  # the figure depends on the sizes: judged on full runs only

    def describe(self) -> str:
        """E.g. '>= 30,000, >= 0.6x baseline'."""
        text = f"{'>=' if self.better == 'higher' else '<='} {self.limit:,g}"
        return text + (f", >= {self.ratio:g}x baseline" if self.ratio else "")

    def met(self, median: float | None, ratio: float | None) -> bool | None:
        """True or False; None when there is nothing to judge (no median)."""
        if median is None:
            return None
        ok = median >= self.limit if self.better == "higher" else median <= self.limit
        if self.ratio is not None and ratio is not None:
            ok = ok and ratio >= self.ratio
        return ok


# metric name (as the report shows it) -> its target
TARGETS: dict[str, Target] = {
    "startup": Target(250, "lower"),
    "commands": Target(30_000, "higher", ratio=0.6),
    "queries": Target(60_000, "higher", ratio=0.6),
    "mixed": Target(25_000, "higher"),
    "latency p50": Target(250, "lower"),
    "latency p99": Target(1_000, "lower"),
    "memory peak": Target(300, "lower", full_size_only=True),
    "memory sampled": Target(300, "lower", full_size_only=True),
    "replay restart": Target(5, "lower", full_size_only=True),  # snapshots allowed (issue 3)
    "replay speed": Target(200_000, "higher", full_size_only=True),
}


# The PostgreSQL node (bench.postgres, "main-pg") beside this repo's SQLite node ("main") in
# the same run: metric -> (least ratio to main's median, or None; least median, or None).
# Said under the table (report.notes): the table's target column is about the first node.
PG_TARGETS: dict[str, tuple[float | None, float | None]] = {
    "commands": (0.5, None),           # at least half the SQLite node's rate
    "replay speed": (None, 100_000),   # events/s replayed from the database
}
