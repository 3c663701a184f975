"""Runs the chosen workloads on one or more node commands, alternating runs between them."""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from bench import messages
from bench.driver import NodeError, NodeProcess, NodeSpec, NotApplicable, remove_data
from bench.verify import ReplyMismatch, body, matches, verify
from bench.workloads import WORKLOADS, Sizes, metric_name

Log = Callable[[str], None]


@dataclass
class Series:
    """Every run's value of one metric on one node."""

    workload: str
    metric: str
    unit: str
    better: str  # "higher" or "lower"
    node: str
    values: list[float] = field(default_factory=list)
    capped: int = 0  # runs cut short by the time cap
    error: str | None = None
    not_applicable: str | None = None  # why the workload does not apply to this node

    def median(self) -> float | None:
        """The median of the runs, or None when there is none."""
        usable = self.values and not self.error and not self.not_applicable
        return statistics.median(self.values) if usable else None


def probe(spec: NodeSpec, workloads: Iterable[str] = (), timeout: float = 30.0) -> list[str]:
    """Check the node answers a GetUser; drop --data-dir if the node rejects it. Returns notes.

    Also finds out the capabilities the chosen workloads need, unless the spec says already:
    keeping data across restarts (replay) and taking --read-replicas (replicas).
    """
    notes = _probe_answers(spec, timeout)
    chosen = set(workloads)
    if "replay" in chosen and spec.durable is None:
        spec.durable = spec.data_dir_flag and _keeps_data(spec, timeout)
        if not spec.durable:
            notes.append(f"{spec.name}: keeps no data across restarts; replay is n/a")
    if "replicas" in chosen and spec.read_replicas is None:
        spec.read_replicas = _takes_replicas(spec, timeout)
        if not spec.read_replicas:
            notes.append(f"{spec.name}: does not run with --read-replicas 2; replicas is n/a")
    return notes


def _probe_answers(spec: NodeSpec, timeout: float) -> list[str]:
    request, reply = messages.sample_get(1)
    with NodeProcess(spec) as node:
        node.write(messages.encode([request]))
        lines, _ = node.read_lines(1, time.perf_counter() + timeout)
        rejected = not lines and node.eof and "data-dir" in node.stderr_tail()
        failure = None if lines else node.stderr_tail()
    if rejected and spec.data_dir_flag:
        spec.data_dir_flag = False
        return [f"{spec.name}: node rejected --data-dir; runs use its default store"] + \
            _probe_answers(spec, timeout)
    if failure is not None:
        raise NodeError(f"{spec.name}: no reply to a first GetUser\n{failure}")
    verify([reply], lines)
    return []


def _keeps_data(spec: NodeSpec, timeout: float) -> bool:
    """Create a user, stop the node, start it again on the same folder: is the user there?"""
    folder = tempfile.mkdtemp(prefix="bench-probe-")
    try:
        create, created = messages.env_create(1, "bench-probe", "Probe")
        with NodeProcess(spec, data_dir=folder, keep_data=True) as node:
            node.write(messages.encode([create]))
            lines, _ = node.read_lines(1, time.perf_counter() + timeout)
        verify([created], lines)
        get, found = messages.env_get(1, "bench-probe", "Probe")
        with NodeProcess(spec, data_dir=folder, keep_data=True) as node:
            node.write(messages.encode([get]))
            lines, _ = node.read_lines(1, time.perf_counter() + timeout)
            if not lines:
                raise NodeError(f"{spec.name}: no reply after a restart\n{node.stderr_tail()}")
        return matches(found, body(lines[0]))
    finally:
        remove_data(spec, folder)


def _takes_replicas(spec: NodeSpec, timeout: float) -> bool:
    """Does the node start and answer with --read-replicas 2?"""
    request, reply = messages.sample_get(1)
    with NodeProcess(spec, ["--read-replicas", "2"]) as node:
        node.write(messages.encode([request]))
        lines, _ = node.read_lines(1, time.perf_counter() + timeout)
    return bool(lines) and matches(reply, body(lines[0]))


def _series_for(name: str, specs: list[NodeSpec]) -> dict[tuple[str, str], Series]:
    metrics = WORKLOADS[name][1]
    return {(suffix, spec.name): Series(name, metric_name(name, suffix), unit, better, spec.name)
            for suffix, (unit, better) in metrics.items() for spec in specs}


def _run_once(name: str, spec: NodeSpec, sizes: Sizes,
              series: dict[tuple[str, str], Series], log: Log) -> None:
    started = time.perf_counter()
    try:
        result = WORKLOADS[name][0](spec, sizes)
    except NotApplicable as exc:
        for (_, node), s in series.items():
            if node == spec.name:
                s.not_applicable = str(exc)
        log(f"  {name} on {spec.name}: n/a: {exc}")
        return
    except (NodeError, ReplyMismatch) as exc:
        for (_, node), s in series.items():
            if node == spec.name:
                s.error = f"{type(exc).__name__}: {exc}"
        log(f"  {name} on {spec.name}: FAILED: {str(exc).strip()}")
        return
    for suffix, value in result.values.items():
        s = series[(suffix, spec.name)]
        s.values.append(value)
        s.capped += result.capped
    shown = ", ".join(f"{metric_name(name, k)}={v:,.1f}" for k, v in result.values.items())
    extra = "".join(f"; {note}" for note in result.notes)
    log(f"  {name} on {spec.name}: {shown}{' (capped)' if result.capped else ''} "
        f"[{time.perf_counter() - started:.1f} s{extra}]")


def run_workload(name: str, specs: list[NodeSpec], sizes: Sizes, runs: int,
                 log: Log = lambda _: None) -> list[Series]:
    """All runs of one workload; the node order flips every run (ABBA) so drift hits all alike."""
    series = _series_for(name, specs)
    for run in range(runs):
        order = specs if run % 2 == 0 else specs[::-1]
        for spec in order:
            if not any(s.error or s.not_applicable
                       for (_, node), s in series.items() if node == spec.name):
                _run_once(name, spec, sizes, series, log)
    return list(series.values())


def run_all(names: list[str], specs: list[NodeSpec], sizes: Sizes, runs: int,
            log: Log = lambda _: None) -> list[Series]:
    """Every chosen workload on every node, in the WORKLOADS order."""
    out: list[Series] = []
    for name in names:
        log(f"{name}:")
        out.extend(run_workload(name, specs, sizes, runs, log))
    return out
