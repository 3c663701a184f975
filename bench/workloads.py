"""The workloads: each starts fresh nodes, drives them like a client and returns its numbers."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from bench import messages
from bench.driver import NodeError, NodeProcess, NodeSpec, NotApplicable
from bench.memory import RssSampler, tree_memory
from bench.store import MIN_RATE, copy_store, replay_store
from bench.verify import body, verify

WARM_UP_ID = 1  # the warm-up query's msg_id; workload requests start after it
FIRST_ID = 2
START_TIMEOUT = 30.0  # seconds a node may take to answer its first request; not the run cap


@dataclass(frozen=True)
class Sizes:
    """How much each workload sends, and how long one run may take."""

    startup_starts: int = 5       # node starts per startup run (their median is the run's value)
    commands: int = 20_000        # pipelined bus CreateUser
    queries: int = 50_000         # pipelined envelope GetUser
    mixed_pairs: int = 10_000     # pipelined (CreateUser, GetUser) pairs
    latency_requests: int = 3_000  # sequential queries
    cmd_latency_requests: int = 500  # sequential commands (each waits for its commit)
    memory_users: int = 100_000   # users created in each context before memory is read
    window: int = 5_000           # unanswered requests at most in the memory workload
    replica_queries: int = 50_000  # pipelined envelope GetUser per replica count
    replay_events: int = 1_000_000  # events in the store a restarted node replays
    replay_empty_starts: int = 3  # empty-store starts per replay run (their median is subtracted)
    run_cap: float = 60.0         # seconds one run may take before it is cut short


DEFAULT_SIZES = Sizes()
QUICK_SIZES = Sizes(startup_starts=2, commands=1_000, queries=2_000, mixed_pairs=500,
                    latency_requests=300, cmd_latency_requests=50, memory_users=5_000,
                    replica_queries=1_000, replay_events=20_000, replay_empty_starts=1,
                    run_cap=10.0)
REPLICA_COUNTS = (1, 2, 3)
RETRYABLE_CODES = (0, 11)  # timeout, temporarily unavailable: a client asks again
RETRY_PAUSE = 0.005  # seconds between such retries: a client does not spin


@dataclass
class Result:
    """One run's numbers by metric name; capped when the time cap cut the run short."""

    values: dict[str, float]
    capped: bool = False
    notes: list[str] = field(default_factory=list)


def _warm_up(node: NodeProcess) -> None:
    """Wait for one answered query, so start-up stays out of the throughput numbers."""
    request, reply = messages.sample_get(WARM_UP_ID)
    node.write(messages.encode([request]))
    lines, _ = node.read_lines(1, time.perf_counter() + START_TIMEOUT)
    if not lines:
        raise NodeError(f"no reply to the warm-up query\n{node.stderr_tail()}")
    verify([reply], lines)


def _pipelined(spec: NodeSpec, pairs: list[messages.Pair], cap: float,
               args: Sequence[str] = ()) -> Result:
    """Write every request at once from a thread; replies per second, first write to last reply."""
    requests, expected = messages.split(pairs)
    chunks = [(messages.encode(requests), len(requests))]  # encoded up front: off the clock
    with NodeProcess(spec, args) as node:
        _warm_up(node)
        lines, t0, t_last = node.exchange(chunks, time.perf_counter() + cap)
    _check_some(expected, lines, cap)
    return Result({"": len(lines) / (t_last - t0)}, len(lines) < len(requests))


def _check_some(expected: list[dict], lines: list[bytes], cap: float) -> None:
    """Verify the replies that came; a capped run still answers for what it got."""
    verify(expected[:len(lines)], lines)
    if not lines:
        raise NodeError(f"no reply within the {cap:g} s cap")


def _sequential(spec: NodeSpec, pairs: list[messages.Pair], cap: float) -> Result:
    """Send one request, wait for its reply, then the next; p50 and p99 in microseconds."""
    requests, expected = messages.split(pairs)
    lines_in = [messages.encode([r]) for r in requests]
    samples, replies = [], []
    with NodeProcess(spec) as node:
        _warm_up(node)
        deadline = time.perf_counter() + cap
        for data in lines_in:
            t0 = time.perf_counter()
            node.write(data)
            got, t1 = node.read_lines(1, deadline)
            if not got:
                break
            samples.append((t1 - t0) * 1e6)
            replies.extend(got)
    verify(expected[:len(replies)], replies)
    if not samples:
        raise NodeError(f"no reply within the {cap:g} s cap")
    return Result({"p50": percentile(samples, 50), "p99": percentile(samples, 99)},
                  capped=len(samples) < len(requests))


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def _start_once(spec: NodeSpec) -> float:
    """Milliseconds from process start to the reply of a GetUser written at once."""
    request, reply = messages.sample_get(FIRST_ID)
    with NodeProcess(spec) as node:
        node.write(messages.encode([request]))
        lines, t_reply = node.read_lines(1, node.started + START_TIMEOUT)
        if not lines:
            raise NodeError(f"no reply within {START_TIMEOUT:.0f} s of start\n"
                            f"{node.stderr_tail()}")
    verify([reply], lines)
    return (t_reply - node.started) * 1000


def startup(spec: NodeSpec, sizes: Sizes) -> Result:
    """Start-up time: median over sizes.startup_starts fresh nodes, in ms."""
    samples = [_start_once(spec) for _ in range(sizes.startup_starts)]
    return Result({"": statistics.median(samples)})


def commands(spec: NodeSpec, sizes: Sizes) -> Result:
    """Pipelined bus CreateUser with unique emails, commands per second."""
    pairs = [messages.bus_create(FIRST_ID + i, i) for i in range(sizes.commands)]
    return _pipelined(spec, pairs, sizes.run_cap)


def queries(spec: NodeSpec, sizes: Sizes) -> Result:
    """Pipelined envelope GetUser of the sample user, queries per second."""
    pairs = [messages.sample_get(FIRST_ID + i) for i in range(sizes.queries)]
    return _pipelined(spec, pairs, sizes.run_cap)


def mixed(spec: NodeSpec, sizes: Sizes) -> Result:
    """Pipelined (CreateUser id-i, GetUser id-i) pairs, msg/s; each query must see its command."""
    pairs: list[messages.Pair] = []
    for i in range(sizes.mixed_pairs):
        user_id, name = f"bench-{i}", f"Bench {i}"
        pairs.append(messages.env_create(FIRST_ID + 2 * i, user_id, name))
        pairs.append(messages.env_get(FIRST_ID + 2 * i + 1, user_id, name))
    return _pipelined(spec, pairs, sizes.run_cap)


def latency(spec: NodeSpec, sizes: Sizes) -> Result:
    """Sequential envelope GetUser round trips, p50 and p99 in microseconds."""
    pairs = [messages.sample_get(FIRST_ID + i) for i in range(sizes.latency_requests)]
    return _sequential(spec, pairs, sizes.run_cap)


def cmd_latency(spec: NodeSpec, sizes: Sizes) -> Result:
    """Sequential envelope CreateUser round trips (a commit each), p50 and p99 in microseconds."""
    pairs = [messages.env_create(FIRST_ID + i, f"lat-{i}", f"Lat {i}")
             for i in range(sizes.cmd_latency_requests)]
    return _sequential(spec, pairs, sizes.run_cap)


def memory(spec: NodeSpec, sizes: Sizes) -> Result:
    """Peak MB of all node processes after memory_users users in each context.

    "peak" sums each process's own high-water mark (VmHWM): an upper bound of the peak of
    the sum. "sampled" is the largest total current RSS seen while sampling every 0.1 s.
    Requests are windowed: far ahead of the node they would only time out in its queue.
    """
    n = sizes.memory_users
    pairs = ([messages.bus_create(FIRST_ID + i, i) for i in range(n)]
             + [messages.env_create(FIRST_ID + n + i, f"mem-{i}", f"Mem {i}") for i in range(n)])
    requests, expected = messages.split(pairs)
    chunks = messages.chunks(requests, max(1, sizes.window // 4))
    with NodeProcess(spec) as node:
        _warm_up(node)
        with RssSampler(node.proc.pid) as sampler:
            lines, _, _ = node.exchange(chunks, _deadline(sizes, len(requests)), sizes.window)
            peak = tree_memory(node.proc.pid)  # before the node exits: peaks die with it
    verify(expected[:len(lines)], lines)
    if len(lines) < len(requests):  # fewer users is another figure: no number rather than a low one
        raise NodeError(f"only {len(lines)} of {len(requests)} replies in time "
                        f"(raise the cap with --cap)")
    return Result({"peak": peak.peak_mb, "sampled": sampler.max_mb},
                  notes=[f"{peak.processes} processes, {sampler.samples} samples"])


def _deadline(sizes: Sizes, requests: int) -> float:
    """A deadline for a run whose figure is not a rate: the cap plus time for a slow node."""
    return time.perf_counter() + sizes.run_cap + requests / MIN_RATE


def replicas(spec: NodeSpec, sizes: Sizes) -> Result:
    """Pipelined envelope GetUser on a node started with --read-replicas 1, 2 and 3, query/s."""
    if spec.read_replicas is False:
        raise NotApplicable("the node takes no --read-replicas")
    pairs = [messages.sample_get(FIRST_ID + i) for i in range(sizes.replica_queries)]
    values, capped = {}, False
    for count in REPLICA_COUNTS:
        result = _pipelined(spec, pairs, sizes.run_cap, ["--read-replicas", str(count)])
        values[str(count)] = result.values[""]
        capped = capped or result.capped
    return Result(values, capped)


def replay(spec: NodeSpec, sizes: Sizes) -> Result:
    """Restart on a store of replay_events events, twice: as the node left its folder
    (with any snapshot it wrote), and with the event store alone (files named *snapshot*
    removed), which forces a full replay. Seconds to a reply that sees the last event,
    and events/s of the full replay (events over its restart time minus the median
    empty-store start-up)."""
    if spec.durable is False or not spec.data_dir_flag:
        raise NotApplicable("the node keeps no data across restarts")
    store = replay_store(spec, sizes.replay_events)  # built once per harness run
    empty_ms = statistics.median(_start_once(spec) for _ in range(sizes.replay_empty_starts))
    cap = max(sizes.run_cap, START_TIMEOUT)
    restart, asked = _restart(spec, copy_store(store), store.checks, cap)
    rebuild, asked_again = _restart(spec, copy_store(store, snapshots=False), store.checks, cap)
    # The floor keeps a replay lost in start-up noise (tiny stores) from dividing by ~0.
    replaying = max(rebuild - empty_ms / 1000, 1e-3)
    return Result({"restart": restart, "rebuild": rebuild, "speed": store.events / replaying},
                  notes=[f"empty-store start-up {empty_ms:.0f} ms, checks asked "
                         f"{asked}x and {asked_again}x"])


def _restart(spec: NodeSpec, folder: str, checks: Callable[[int], list[messages.Pair]],
             cap: float) -> tuple[float, int]:
    """Seconds from starting the node on folder to right answers to the check queries,
    and how many times they were asked.

    A query the node answers with a timeout or "unavailable" while it replays is asked
    again, as a client would; a wrong answer fails the run.
    """
    msg_id, asked = FIRST_ID, 0
    with NodeProcess(spec, data_dir=folder) as node:  # the node's stop removes the copy
        deadline = node.started + cap
        while True:
            requests, expected = messages.split(checks(msg_id))
            msg_id, asked = msg_id + len(requests), asked + 1
            node.write(messages.encode(requests))
            lines, t_reply = node.read_lines(len(requests), deadline)
            if len(lines) < len(requests):
                raise NodeError(f"no answer to the replay check within {cap:g} s of start\n"
                                f"{node.stderr_tail()}")
            if not any(_retryable(line) for line in lines):
                verify(expected, lines)
                return t_reply - node.started, asked
            time.sleep(RETRY_PAUSE)


def _retryable(line: bytes) -> bool:
    """True for an error reply that asks the client to try again later."""
    reply = body(line)
    return (isinstance(reply, dict) and reply.get("type") == "error"
            and reply.get("code") in RETRYABLE_CODES)


Workload = Callable[[NodeSpec, Sizes], Result]

# name -> (function, {metric suffix: (unit, which way is better)}); the order is the run order.
WORKLOADS: dict[str, tuple[Workload, dict[str, tuple[str, str]]]] = {
    "startup": (startup, {"": ("ms", "lower")}),
    "commands": (commands, {"": ("cmd/s", "higher")}),
    "queries": (queries, {"": ("query/s", "higher")}),
    "mixed": (mixed, {"": ("msg/s", "higher")}),
    "latency": (latency, {"p50": ("us", "lower"), "p99": ("us", "lower")}),
    "cmdlatency": (cmd_latency, {"p50": ("us", "lower"), "p99": ("us", "lower")}),
    "memory": (memory, {"peak": ("MB", "lower"), "sampled": ("MB", "lower")}),
    "replicas": (replicas, {str(n): ("query/s", "higher") for n in REPLICA_COUNTS}),
    "replay": (replay, {"restart": ("s", "lower"), "rebuild": ("s", "lower"),
                        "speed": ("event/s", "higher")}),
}


def metric_name(workload: str, suffix: str) -> str:
    """The name a metric is reported under, e.g. 'latency p50'."""
    return f"{workload} {suffix}".strip()
