"""GET /metrics: the node's figures in the Prometheus text format (prometheus-client).

A custom Collector builds every metric at scrape time from what the monitor last heard
(the latest stats reply, the processes it lists, the monitor's own count of the stream),
rather than pushing into global metric objects: nothing here keeps a total of its own that
could drift from the node's.

Counters are the counts of the process that counts them, labelled with its pid, so a
restarted process starts a new series from zero instead of making one go backwards.
Events appended are counted from the stream itself, which the monitor replays from the
start of the store: they are the store's own totals, the same across restarts of any
process, the monitor's included. docs/monitor.md lists every metric.
"""
from __future__ import annotations

import time
from typing import Iterator

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector, CollectorRegistry

from common import buckets
from monitor.view import NodeView

# Subscription counters (read sides and the monitor: common.subscription) -> metric, help.
SUBSCRIPTION = {
    "gaps": ("cqrs_subscription_gaps", "Gaps seen on the live event stream (each healed by a "
             "catch-up from the store)"),
    "catchups": ("cqrs_subscription_catchups", "Catch-ups from the store"),
    "duplicates": ("cqrs_subscription_duplicates", "Events received again and dropped"),
    "caught_up_events": ("cqrs_subscription_caught_up_events",
                         "Events read from the store by catch-ups"),
}
# Other per-process counters: (role, counter) -> metric, help.
PROCESS_COUNTERS = {
    ("read", "queries"): ("cqrs_read_queries", "Queries answered by a read side"),
    ("write", "commands"): ("cqrs_write_commands", "Commands taken by the write side"),
    ("write", "published"): ("cqrs_write_published", "Events published on the stream"),
    ("write", "catchup_served"): ("cqrs_catchup_served", "Catch-up requests served"),
}


class NodeCollector(Collector):
    def __init__(self, view: NodeView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        view = self.view
        now = time.monotonic()
        with view.lock:
            router = dict((view.stats or {}).get("router", {}))
            rows = view.processes(now)
            appended = dict(view.appended)
            seen = {role: len(pids) for role, pids in view.pids_seen.items()}
            up, head = view.up(now), view.head()
        yield _gauge("cqrs_up", "1 while the router answers the monitor's stats requests",
                     [], [([], 1 if up else 0)])
        yield _gauge("cqrs_head_position", "Position of the last stored event",
                     [], [([], head)])
        yield _counter("cqrs_events_appended", "Events in the store, by context and type "
                       "(counted from the event stream)", ["context", "type"],
                       [([c, t], n) for (c, t), n in sorted(appended.items())])
        yield from _router_metrics(router)
        yield from _process_metrics(rows)
        yield _counter("cqrs_processes_seen", "Back-end processes the monitor has seen since "
                       "it started (a restart or a new replica adds one)", ["pid", "role"],
                       [([str(view.pid), role], n) for role, n in sorted(seen.items())])


def _router_metrics(router: dict) -> Iterator[Metric]:
    if not router:
        return
    pid = str(router.get("pid", ""))
    answered = router.get("answered", {})
    yield _counter("cqrs_requests", "Requests answered by the router, by kind and outcome",
                   ["pid", "kind", "outcome"],
                   [([pid, kind, outcome], n) for kind, outcomes in sorted(answered.items())
                    for outcome, n in sorted(outcomes.items())])
    latency = router.get("latency", {})
    durations = HistogramMetricFamily(
        "cqrs_request_duration_seconds", "Seconds from reading a request to its answer from "
        "a back-end, measured by the router", labels=["pid", "kind"])
    for kind in ("command", "query"):
        if kind in latency:
            durations.add_metric([pid, kind], _cumulative(latency["bounds"],
                                                          latency[kind]["buckets"]),
                                 latency[kind]["sum"])
    yield durations
    yield _gauge("cqrs_requests_pending", "Requests read and not answered yet", ["pid"],
                 [([pid], router.get("pending", 0))])
    restarts = router.get("restarts", {})
    yield _counter("cqrs_restarts", "Restarts of each process run_node.py supervises "
                   "(pid: the launcher's)", ["pid", "process"],
                   [([pid, name], n) for name, n in sorted(restarts.items())])


def _process_metrics(rows: list[dict]) -> Iterator[Metric]:
    def labelled(value_of) -> list:
        return [([r["role"], str(r["pid"])], value_of(r)) for r in rows]

    yield _gauge("cqrs_process_position", "Last position a process has applied (the router: "
                 "the head it knows)", ["role", "pid"], labelled(lambda r: r["position"]))
    yield _gauge("cqrs_process_lag_events", "Events a process is behind the head",
                 ["role", "pid"], labelled(lambda r: r["lag"]))
    yield _gauge("cqrs_process_ready", "1 when a process serves (a read side: caught up)",
                 ["role", "pid"], labelled(lambda r: 1 if r["ready"] else 0))
    yield _gauge("cqrs_process_reporting", "1 while the router hears from a process; 0 for "
                 "one that went silent lately (shown for a minute with its last figures)",
                 ["role", "pid"], labelled(lambda r: 1 if r["reporting"] else 0))
    yield _counter("cqrs_dropped_messages", "Malformed messages a process dropped",
                   ["role", "pid"], [([r["role"], str(r["pid"])],
                                      r["counters"].get("dropped_messages", 0)) for r in rows
                                     if "dropped_messages" in r["counters"]])
    for key, (name, text) in SUBSCRIPTION.items():
        yield _counter(name, text, ["role", "pid"],
                       [([r["role"], str(r["pid"])], r["counters"][key]) for r in rows
                        if key in r["counters"] and r["role"] in ("read", "monitor")])
    for (role, key), (name, text) in PROCESS_COUNTERS.items():
        yield _counter(name, text, ["pid"], [([str(r["pid"])], r["counters"][key])
                                             for r in rows
                                             if r["role"] == role and key in r["counters"]])
    sizes = HistogramMetricFamily("cqrs_write_batch_size", "Commands in each batch the write "
                                  "side committed", labels=["pid"])
    commits = HistogramMetricFamily("cqrs_write_commit_duration_seconds", "Seconds the write "
                                    "side took to decide and commit one batch (its "
                                    "transaction and sync included)", labels=["pid"])
    for r in rows:
        if r["role"] != "write":
            continue
        size = buckets.read(r["counters"], "batch_size")
        if size is not None:
            sizes.add_metric([str(r["pid"])], _cumulative(size.bounds, size.buckets), size.sum)
        commit = buckets.read(r["counters"], "commit_us")
        if commit is not None:
            commits.add_metric([str(r["pid"])],
                               _cumulative([b / 1e6 for b in commit.bounds], commit.buckets),
                               commit.sum / 1e6)
    yield sizes
    yield commits


def _cumulative(bounds: list, counts: list[int]) -> list[tuple[str, int]]:
    """Prometheus buckets (le, values up to it) from per-bucket counts whose last entry
    holds the values above the last bound."""
    out, total = [], 0
    for bound, n in zip(bounds, counts):
        total += n
        out.append((f"{bound:g}" if isinstance(bound, float) else str(bound), total))
    out.append(("+Inf", total + (counts[-1] if len(counts) > len(bounds) else 0)))
    return out


def _counter(name: str, text: str, labels: list[str], samples: list) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=labels)
    for values, n in samples:
        family.add_metric(values, n)
    return family


def _gauge(name: str, text: str, labels: list[str], samples: list) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=labels)
    for values, n in samples:
        family.add_metric(values, n)
    return family


def registry(view: NodeView) -> CollectorRegistry:
    """A registry of the node's metrics alone (not this process's own, nor any global)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(NodeCollector(view))
    return reg
