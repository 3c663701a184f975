"""Process-wide settings every node process shares."""
from __future__ import annotations

import gc


def collect_garbage_rarely() -> None:
    """Run the cyclic garbage collector far less often than Python's default.

    Every process here holds many long-lived objects without cycles (projections,
    aggregates, pending requests) and makes many short-lived ones per message; at
    the default thresholds the collector rescans them again and again, which costs
    7% of a write side's time and a large share of a replay. Reference counting
    still frees everything without cycles at once.
    """
    gc.set_threshold(50_000, 20, 100)
