"""Inputs for tests of the benchmark harness (bench/): workload sizes small enough for a test,
and result series made up so that the report's arithmetic can be checked by hand."""
from __future__ import annotations

from bench import workloads
from bench.runner import Series

TINY = workloads.Sizes(startup_starts=1, commands=20, queries=20, mixed_pairs=10,
                       latency_requests=10, cmd_latency_requests=5, memory_users=20, window=8,
                       replica_queries=20, replay_events=12, replay_empty_starts=1,
                       run_cap=30.0)


def _series(metric: str, unit: str, better: str, node: str, values: list[float],
            **kw) -> Series:
    return Series(metric.split()[0], metric, unit, better, node, values, **kw)


SAMPLE_SERIES = [
    _series("commands", "cmd/s", "higher", "main", [30_000, 32_000, 31_000]),
    _series("commands", "cmd/s", "higher", "baseline", [40_000, 41_000, 39_000]),
    _series("latency p50", "us", "lower", "main", [300, 310, 290]),
    _series("latency p50", "us", "lower", "baseline", [100, 100, 100]),
    _series("replay restart", "s", "lower", "main", [1.5, 1.6, 1.4]),
    _series("replay restart", "s", "lower", "baseline", [],
            not_applicable="the node keeps no data across restarts"),
]
NODES = ["main", "baseline"]
