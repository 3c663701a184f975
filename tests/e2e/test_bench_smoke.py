"""Smoke test of the benchmark harness (bench/): the workloads run in-process with tiny sizes
against the real node, probes and memory readings of real processes, the replay store, the
Markdown page and the command line. No timing is asserted. (The parts that start no process
are in tests/unit/test_bench_*.py.)"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from bench import cli, markdown, memory, messages, store, workloads
from bench.driver import NodeProcess, NodeSpec, baseline_available, default_spec, parse_spec
from bench.runner import probe
from bench.verify import ReplyMismatch, body, verify
from tests.support.bench_samples import NODES, SAMPLE_SERIES, TINY


@pytest.mark.parametrize("name", list(workloads.WORKLOADS))
def test_workload_returns_positive_numbers(name):
    function, metrics = workloads.WORKLOADS[name]
    result = function(default_spec(), TINY)
    assert set(result.values) == set(metrics)
    assert all(value > 0 for value in result.values.values()), result.values
    assert not result.capped


# -- other node commands -----------------------------------------------------------------

FAKE_NODE = textwrap.dedent("""
    import argparse, json, sys
    argparse.ArgumentParser().parse_args()   # no --data-dir: rejects it like an older node
    for line in sys.stdin:
        msg_id = json.loads(line)["msg_id"]
        print(json.dumps({"type": "query_result", "in_reply_to": msg_id,
                          "data": {"id": "user-123", "name": NAME}}), flush=True)
""")


def _fake_node(tmp_path, name: str) -> NodeSpec:
    script = tmp_path / "fake_node.py"
    script.write_text(FAKE_NODE.replace("NAME", repr(name)))
    return parse_spec(f"{sys.executable} {script}", "fake")


def test_probe_falls_back_when_data_dir_is_rejected(tmp_path):
    spec = _fake_node(tmp_path, "John")
    notes = probe(spec)
    assert not spec.data_dir_flag and "data-dir" in notes[0]
    assert workloads.queries(spec, TINY).values[""] > 0


def test_a_node_with_wrong_answers_gets_no_number(tmp_path):
    spec = _fake_node(tmp_path, "Mallory")
    spec.data_dir_flag = False
    with pytest.raises(ReplyMismatch):
        workloads.queries(spec, TINY)


# -- memory of a process tree ------------------------------------------------------------

TREE = textwrap.dedent("""
    import subprocess, sys
    code = "import sys; block = bytearray({mb} << 20); print('up', flush=True); sys.stdin.read()"
    kids = [subprocess.Popen([sys.executable, "-c", code.format(mb=40)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE),
            # a child in a session of its own still counts: it descends from the root
            subprocess.Popen([sys.executable, "-c", code.format(mb=20)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, start_new_session=True)]
    for kid in kids:
        kid.stdout.readline()
    print("ready", flush=True)
    sys.stdin.read()
    for kid in kids:
        kid.stdin.close()
        kid.wait()
""")


@pytest.fixture
def process_tree():
    """A root process (own session) with two children holding 40 and 20 MB; yields its pid."""
    root = subprocess.Popen([sys.executable, "-c", TREE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert root.stdout.readline() == b"ready\n"  # every child is up: no sleeping
        yield root.pid
    finally:
        root.stdin.close()
        root.wait(timeout=30)


def test_tree_memory_sums_every_process_of_the_tree(process_tree):
    pids = memory.tree_pids(process_tree)
    assert len(pids) == 3 and process_tree in pids and os.getpid() not in pids
    parts = [memory._status_kb(p, ("VmHWM",))["VmHWM"] / 1024 for p in pids]
    total = memory.tree_memory(process_tree)
    assert total.processes == 3
    assert total.peak_mb == pytest.approx(sum(parts), abs=1.0)
    assert all(total.peak_mb >= part for part in parts)
    assert total.peak_mb >= 60 and total.current_mb >= 60  # the children's 40 + 20 MB


def test_rss_sampler_sees_the_tree(process_tree):
    with memory.RssSampler(process_tree, interval=0.01) as sampler:
        pass
    assert sampler.samples >= 1 and sampler.max_mb >= 60


def test_memory_of_a_gone_process_is_zero():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert memory.tree_memory(gone.pid).peak_mb == 0


# -- capabilities --------------------------------------------------------------------

def test_probe_finds_the_capabilities(tmp_path):
    real, fake = default_spec(), _fake_node(tmp_path, "John")
    probe(real, ["replay", "replicas"])
    assert real.durable is True and real.read_replicas is True
    notes = probe(fake, ["replay", "replicas"])
    assert fake.durable is False and fake.read_replicas is False
    assert any("replay is n/a" in n for n in notes) and any("replicas is n/a" in n for n in notes)


# -- the replay store ---------------------------------------------------------------------

def _stats_head(node: NodeProcess) -> int:
    node.write(b'{"type": "stats", "msg_id": 99}\n')
    lines, _ = node.read_lines(1, time.perf_counter() + 30)
    return body(lines[0])["data"]["router"]["head"]


def test_store_builder_makes_a_store_the_restarted_node_replays(tmp_path):
    spec, events = default_spec(), 14
    built = store.build_store(spec, events, str(tmp_path / "store"))
    assert built.last_bus[1] == "Renamed User 2" and built.last_account == ("acct-1",
                                                                              "Account 1 rename 2")
    copy = store.copy_store(built)
    with NodeProcess(spec, data_dir=copy) as node:  # a restart on a copy
        requests, expected = messages.split(built.checks(2))
        node.write(messages.encode(requests))
        lines, _ = node.read_lines(2, time.perf_counter() + 30)
        verify(expected, lines)  # both contexts answer their final state
        assert _stats_head(node) == events + 4  # and nothing else: the 4 sample events
    assert not os.path.exists(copy)  # each replay removes its copy
    seconds, asked = workloads._restart(spec, store.copy_store(built), built.checks, 30.0)
    assert 0 < seconds < 30 and asked >= 1


def test_replay_check_fails_on_a_store_without_the_events(tmp_path):
    built = store.Store(str(tmp_path), 8, ("no-such-id", "X"), ("no-such-account", "Y"))
    with pytest.raises(ReplyMismatch):
        workloads._restart(default_spec(), str(tmp_path / "empty"), built.checks, 30.0)


# -- Markdown (its machine lines ask the system), plot (matplotlib may ask fontconfig) --

def test_markdown_has_machine_command_and_table(tmp_path):
    path = tmp_path / "BENCH.md"
    specs = [default_spec(), NodeSpec("baseline", ["python", "-m", "bench.baseline"])]
    markdown.write(str(path), SAMPLE_SERIES, specs, TINY, 3, "python -m bench --quick",
                   quick=True, plot=str(tmp_path / "r.png"))
    text = path.read_text()
    for line in ("# Benchmarks", "- date: ", "- platform: ", "- python: ", "- cpu: ",
                 "- cores: ", "- ram: ", "- command: `python -m bench --quick`",
                 "- runs: 3", "| metric | unit | runs | main | baseline | main vs baseline |",
                 "| latency p50 | us | 3/3 | 300 | 100 | 0.33x |", "![results](r.png)",
                 "## How to read", "ABBA"):
        assert line in text, line
    assert "| replay restart | s | 3/0 | 1.50 | n/a | - |" in text
    assert "full runs only" in text  # a size-bound target is not judged on quick sizes


def test_appendices_follow_the_results_in_order(tmp_path):
    path, first, second = tmp_path / "BENCH.md", tmp_path / "a.md", tmp_path / "b.md"
    first.write_text("## Analysis\n\nwhere the time goes\n")
    second.write_text("## Before and after\n")
    markdown.write(str(path), SAMPLE_SERIES, [default_spec()], TINY, 3, "cmd",
                   appendices=[str(first), str(second)])
    text = path.read_text()
    assert text.index("## Workloads") < text.index("## Analysis") < text.index("## Before and")
    assert text.endswith("## Before and after\n")


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    from bench import plot
    path = tmp_path / "results.png"
    plot.write(str(path), SAMPLE_SERIES, NODES, 3, quick=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


# -- the command line ---------------------------------------------------------------------

@pytest.mark.skipif(not baseline_available(), reason="bench/baseline.py is not there yet")
def test_cli_runs_main_against_the_baseline_and_writes_markdown(tmp_path, capsys):
    page = tmp_path / "B.md"
    status = cli.main(["--quick", "--runs", "1", "--only", "startup",
                       "--markdown", str(page), "--no-plot"])
    captured = capsys.readouterr()
    out = captured.out
    assert status == 0, out
    assert "main vs baseline" in out  # no --node: this repo's node against the baseline
    # ... and the same node on PostgreSQL where a server can be started (bench.postgres),
    # else a line saying why not.
    pg = "node main-pg: " in captured.err
    assert pg or "main-pg is not run" in captured.err, captured.err
    assert pg or os.environ.get("CQRS_REQUIRE_POSTGRES") != "1", captured.err
    assert ("main-pg vs baseline" in out) == pg, out
    assert f"| startup | ms | {'1/1/1' if pg else '1/1'} |" in page.read_text()


def test_a_missing_program_leaves_no_data_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    spec = parse_spec(str(tmp_path / "no-such-program"), "missing")
    with pytest.raises(OSError):
        NodeProcess(spec, data_dir=str(folder))
    assert not folder.exists()
