"""The benchmark's report (bench/report.py, targets.py) from made-up series, and workloads
that do not apply to a node shown as n/a, not as failures. (The Markdown page asks the system
about the machine, and matplotlib may ask fontconfig for fonts: both start a process, so those
tests are in tests/e2e/test_bench_smoke.py.)"""
from __future__ import annotations

import sys

import pytest

from bench import report, workloads
from bench.driver import NodeSpec, NotApplicable
from bench.runner import run_workload
from bench.targets import TARGETS, Target
from tests.support.bench_samples import NODES, SAMPLE_SERIES, TINY


def test_not_applicable_is_reported_as_na_not_failure():
    spec = NodeSpec("nodurable", [sys.executable, "-c", "raise SystemExit(9)"],
                    durable=False, read_replicas=False)
    with pytest.raises(NotApplicable):
        workloads.replay(spec, TINY)
    series = run_workload("replicas", [spec], TINY, runs=3)
    assert all(s.not_applicable and not s.error and not s.values for s in series)
    assert all(s.median() is None for s in series)
    text = report.table(series, ["nodurable"])
    assert "n/a" in text and "FAILED" not in text
    assert any("n/a" in line for line in report.notes(series, ["nodurable"]))


def test_ratios_are_oriented_so_above_one_is_better():
    rows = {r.metric: r for r in report.rows(SAMPLE_SERIES, NODES)}
    assert rows["commands"].ratios["main"] == pytest.approx(31_000 / 40_000)
    assert rows["latency p50"].ratios["main"] == pytest.approx(100 / 300)
    assert rows["replay restart"].ratios["main"] is None
    assert rows["commands"].verdict == "yes"  # >= 30,000/s and 0.775x >= 0.6x
    assert rows["latency p50"].verdict == "NO"  # 300 us > 250 us
    assert rows["replay restart"].verdict == "yes"


def test_targets_judge_limit_and_ratio():
    assert TARGETS["commands"].met(31_000, 0.7) is True
    assert TARGETS["commands"].met(31_000, 0.5) is False
    assert TARGETS["commands"].met(29_000, 2.0) is False
    assert Target(250, "lower").met(300, None) is False
    assert Target(250, "lower").met(None, None) is None
