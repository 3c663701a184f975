"""Node commands of the benchmark (bench/driver.py parse_spec): leading environment words,
the `main` and `baseline` keywords, extra arguments."""
from __future__ import annotations

from bench.driver import default_spec, parse_spec


def test_node_command_takes_leading_environment_words():
    spec = parse_spec("CQRS_SYNC=normal python run_node.py --envelope", "n")
    assert spec.env == {"CQRS_SYNC": "normal"}
    assert spec.argv == ["python", "run_node.py", "--envelope"]


def test_node_keywords_take_environment_and_arguments():
    spec = parse_spec("CQRS_SYNC=normal main --read-replicas 2", "n")
    assert spec.argv == default_spec().argv + ["--read-replicas", "2"]
    assert spec.env == {"CQRS_SYNC": "normal"}
    assert parse_spec("baseline", "b").read_replicas is False
