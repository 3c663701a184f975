"""A newcomer's first hour (issue 13), the parts that need no process: settings refused up
front with their range, the hint logged for a request without its arguments object, the
examples that end --help and the README, where the benchmark writes, how the tap reaches a
catch-up endpoint that a heartbeat announces, the conformance runner's matching, and the
re-run under the project's .venv."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from bench import cli as bench_cli
from common import config, dependencies, tap
from router import parse as parse_module

ROOT = Path(__file__).resolve().parents[2]


def _conformance_runner():
    """tests/conformance/run.py, a script (no package), loaded by its path."""
    spec = importlib.util.spec_from_file_location("conformance_run",
                                                  ROOT / "tests" / "conformance" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


# -- settings checked up front (item 5) -------------------------------------------------------

@pytest.mark.parametrize("argv, env, named, allowed", [
    (["--timeout", "0"], {}, "--timeout (CQRS_TIMEOUT)", "from 0.001 to 86400"),
    (["--timeout", "-1"], {}, "--timeout (CQRS_TIMEOUT)", "from 0.001 to 86400"),
    (["--timeout", "nan"], {}, "--timeout (CQRS_TIMEOUT)", "not nan"),
    (["--timeout", "inf"], {}, "--timeout (CQRS_TIMEOUT)", "not inf"),
    ([], {"CQRS_TIMEOUT": "0"}, "--timeout (CQRS_TIMEOUT)", "from 0.001 to 86400"),
    (["--read-replicas", "0"], {}, "--read-replicas (CQRS_READ_REPLICAS)", "from 1 to 64"),
    (["--read-replicas", "-3"], {}, "--read-replicas (CQRS_READ_REPLICAS)", "from 1 to 64"),
    (["--read-replicas", "65"], {}, "--read-replicas (CQRS_READ_REPLICAS)", "from 1 to 64"),
    (["--max-line", "0"], {}, "--max-line (CQRS_MAX_LINE)", "from 1 to 1073741824"),
    ([], {"CQRS_SNAPSHOT_MIN": "0"}, "CQRS_SNAPSHOT_MIN", "at least 1"),
    ([], {"CQRS_FAULT_DROP_EVERY": "-1"}, "CQRS_FAULT_DROP_EVERY", "at least 0"),
    ([], {"CQRS_FAULT_MAX_PAGES": "-5"}, "CQRS_FAULT_MAX_PAGES", "at least 0"),
])
def test_a_setting_out_of_range_is_a_usage_error_naming_it_and_its_range(argv, env, named,
                                                                          allowed, capsys):
    with pytest.raises(SystemExit) as exit_:
        config.parse(argv, env=env)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert named in err and allowed in err, err


def test_the_ends_of_each_range_are_accepted():
    cfg = config.parse(["--timeout", "0.001", "--read-replicas", "64", "--max-line", "1"],
                       env={"CQRS_SNAPSHOT_MIN": "1", "CQRS_FAULT_DROP_EVERY": "0"})
    assert (cfg.timeout, cfg.read_replicas, cfg.max_line) == (0.001, 64, 1)
    assert config.parse(["--timeout", "86400", "--read-replicas", "1"], env={}).timeout == 86400


def test_every_range_names_a_numeric_setting():
    """A misspelt RANGES key would check nothing."""
    for name in config.RANGES:
        assert isinstance(config.setting(name).default, (int, float)), name
        assert not isinstance(config.setting(name).default, bool), name


# -- the hint for a request without its arguments object (item 2) -----------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """A fresh hint (nothing logged yet) on a clock the test moves."""
    fake = FakeClock()
    monkeypatch.setattr(parse_module, "hint_missing", parse_module.MissingObjectHint(clock=fake))
    return fake


def _parse(body: dict):
    return parse_module.parse(json.dumps(body).encode(), 1 << 20)


def _hints(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "a good request looks like" in
            r.getMessage()]


@pytest.mark.parametrize("body, missing, shape", [
    ({"type": "CreateUser", "msg_id": 7}, "payload",
     '{"type": "CreateUser", "msg_id": 1, "payload": {...}}'),
    ({"type": "GetUser", "msg_id": 7}, "params",
     '{"type": "GetUser", "msg_id": 1, "params": {...}}'),
    ({"type": "command", "msg_id": 7}, "command",
     '{"type": "command", "msg_id": 1, "command": {"type": "CreateUser", "payload": {...}}}'),
    ({"type": "command", "msg_id": 7, "command": {"type": "RenameUser"}}, "command.payload",
     '{"type": "command", "msg_id": 1, "command": {"type": "RenameUser", "payload": {...}}}'),
    ({"type": "query", "msg_id": 7}, "query",
     '{"type": "query", "msg_id": 1, "query": {"type": "GetUser", "params": {...}}}'),
    ({"type": "query", "msg_id": 7, "query": {"type": "GetUserHistory"}}, "query.params",
     '{"type": "query", "msg_id": 1, "query": {"type": "GetUserHistory", "params": {...}}}'),
])
def test_a_missing_object_is_logged_once_with_the_shape_of_a_good_request(body, missing, shape,
                                                                         clock, caplog):
    caplog.set_level(logging.WARNING, logger="router")
    _parse(body)
    hints = _hints(caplog)
    assert len(hints) == 1, hints
    assert f"msg_id 7 has no {missing} object" in hints[0]
    assert shape in hints[0]


def test_the_hint_leaves_the_parsed_request_as_the_protocol_has_it(clock, caplog):
    """A command without payload still goes to the write side with no arguments (its reply is
    the validation errors); a missing command object is still error 12."""
    caplog.set_level(logging.WARNING, logger="router")
    parsed = _parse({"type": "CreateUser", "msg_id": 1})
    assert (parsed.kind, parsed.name, parsed.args) == ("command", "CreateUser", None)
    clock.now += 5
    parsed = _parse({"type": "command", "msg_id": 2})
    assert (parsed.kind, parsed.error[0]) == ("error", 12)


@pytest.mark.parametrize("body", [
    {"type": "CreateUser", "msg_id": 1, "payload": {}},
    {"type": "ListUsers", "msg_id": 1},  # params are optional
    {"type": "query", "msg_id": 1, "query": {"type": "ListUsers"}},
    {"type": "GetUser", "msg_id": 1, "params": {"user_id": "u"}},
    {"type": "init", "msg_id": 1},
    {"type": "Nope", "msg_id": 1},
])
def test_no_hint_for_a_request_that_has_what_it_needs(body, clock, caplog):
    caplog.set_level(logging.WARNING, logger="router")
    _parse(body)
    assert _hints(caplog) == []


def test_the_hint_stays_one_short_line_whatever_the_msg_id(clock, caplog):
    caplog.set_level(logging.WARNING, logger="router")
    _parse({"type": "CreateUser", "msg_id": "x\ny" * 10_000})
    (hint,) = _hints(caplog)
    assert "\n" not in hint and len(hint) < 300, hint


def test_a_flood_logs_one_line_a_second_and_counts_the_rest(clock, caplog):
    caplog.set_level(logging.WARNING, logger="router")
    for i in range(500):
        _parse({"type": "CreateUser", "msg_id": i})
        clock.now += 0.001  # 500 requests in half a second
    assert len(_hints(caplog)) == 1
    clock.now += 0.5
    _parse({"type": "CreateUser", "msg_id": 999})
    hints = _hints(caplog)
    assert len(hints) == 2
    assert "499 more such requests since the last line" in hints[1]


# -- the examples at the end of --help and in the README (item 2) -------------------------------

def test_help_ends_with_the_examples_and_the_readme_shows_the_same_lines():
    text = config.parser("the node").format_help().rstrip("\n").split("\n")
    assert text[-len(config.EXAMPLE_LINES):] == config.EXAMPLE_LINES
    assert len(config.EXAMPLES) == 2  # one a dialect
    assert "\n".join(config.EXAMPLE_LINES) in (ROOT / "README.md").read_text()
    assert "\n".join(line.strip() for line in config.EXAMPLE_LINES) in \
        (ROOT / "docs" / "protocol.md").read_text().replace("\n  ", "\n")


# -- docs/protocol.md covers what the node serves (item 2) --------------------------------------

def test_the_protocol_page_names_every_request_and_every_error_code():
    from common.contexts import CONTEXTS

    page = (ROOT / "docs" / "protocol.md").read_text()
    for spec in CONTEXTS:
        assert f"`{spec.name}`" in page, spec.name
        for name in spec.commands + spec.queries:
            assert f"`{name}`" in page, name
    for code in (0, 10, 11, 12, 13):
        assert f"\n| {code} |" in page, code
    for promise in ('"catchup"', '"head"', "`stats`", "`init`", "command_id", "commandId",
                    "expected_version", "expectedVersion", "NaN", "Infinity", "--envelope"):
        assert promise in page, promise


# -- where the benchmark writes (item 8) -------------------------------------------------------

@pytest.mark.parametrize("argv, committed", [
    ([], True),
    (["--runs", "3"], True),
    (["--quick"], False),
    (["--only", "commands"], False),
    (["--node", "main"], False),
    (["--cap", "5"], False),
])
def test_only_a_full_benchmark_run_writes_the_committed_results(argv, committed):
    markdown, plot = bench_cli.output_paths(bench_cli._parser().parse_args(argv))
    if committed:
        assert (markdown, plot) == (str(ROOT / "BENCHMARKS.md"), str(ROOT / "bench" / "results.png"))
    else:
        assert (markdown, plot) == (str(ROOT / "bench" / "out" / "BENCHMARKS.md"),
                                    str(ROOT / "bench" / "out" / "results.png"))


def test_paths_given_to_the_benchmark_win(tmp_path):
    args = bench_cli._parser().parse_args(["--quick", "--markdown", str(tmp_path / "m.md"),
                                           "--plot", str(tmp_path / "p.png")])
    assert bench_cli.output_paths(args) == (str(tmp_path / "m.md"), str(tmp_path / "p.png"))


def test_the_benchmark_scratch_folder_and_the_serve_store_are_ignored_by_git():
    ignored = (ROOT / ".gitignore").read_text().split("\n")
    assert "bench/out/" in ignored and ".data/" in ignored
    assert 'CQRS_DATA_DIR="$(CURDIR)/.data"' in (ROOT / "Makefile").read_text()


# -- the tap finds the catch-up endpoint a heartbeat announces (item 3) -------------------------

@pytest.mark.parametrize("announced, events, expected", [
    ("ipc:///run/x/catchup.sock", "ipc:///run/x/events.sock", "ipc:///run/x/catchup.sock"),
    ("tcp://127.0.0.1:7001", "tcp://127.0.0.1:7000", "tcp://127.0.0.1:7001"),
    ("tcp://0.0.0.0:7001", "tcp://node-a:7000", "tcp://node-a:7001"),
    ("tcp://*:7001", "tcp://10.1.2.3:7000", "tcp://10.1.2.3:7001"),
    ("tcp://[::]:7001", "tcp://[::1]:7000", "tcp://[::1]:7001"),
    ("tcp://10.0.0.9:9999", "tcp://node-a:7000", "tcp://10.0.0.9:9999"),
])
def test_an_announced_catchup_endpoint_is_made_reachable(announced, events, expected):
    assert tap.reachable(announced, events) == expected


@pytest.mark.parametrize("events, expected", [
    ("tcp://127.0.0.1:7000", "tcp://127.0.0.1:7001"),
    ("tcp://[::1]:5553", "tcp://[::1]:5554"),
    ("ipc:///tmp/cqrs-node-x/events.sock", "ipc:///tmp/cqrs-node-x/catchup.sock"),
    ("ipc:///tmp/elsewhere/ev.sock", ""),  # chosen by hand: no default place beside it
    ("tcp://127.0.0.1:65535", ""),
    ("inproc://events", ""),
])
def test_the_fallback_for_a_busy_node_is_where_the_launcher_puts_the_catchup(events, expected):
    assert tap.launcher_default(events) == expected


@pytest.mark.parametrize("argv", [["--connect-timeout", "0"], ["--connect-timeout", "nan"],
                                  ["--connect-timeout", "-2"]])
def test_tap_refuses_a_connect_timeout_that_is_not_a_duration(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        tap.parse_args(["--endpoint", "ipc:///x", *argv])
    assert exit_.value.code == 2
    assert "--connect-timeout must be a number of seconds greater than 0" in capsys.readouterr().err


def test_client_refuses_timeouts_that_are_not_durations(capsys):
    from router import client

    for flag in ("--timeout", "--connect-timeout"):
        with pytest.raises(SystemExit) as exit_:
            client.parse_args([flag, "0"])
        assert exit_.value.code == 2
        assert f"{flag} must be a number of seconds" in capsys.readouterr().err
    args = client.parse_args([])
    assert args.timeout == client.DEFAULT_REPLY_TIMEOUT > 5.0  # beyond the node's own deadline
    assert args.connect_timeout == 10.0


# -- the conformance runner's comparison (item 2) -----------------------------------------------

@pytest.mark.parametrize("expected, line, verdict", [
    ('{"a": 1}', '{"a": 1}', True),
    ('{"a": 1}', '{"a": 2}', False),
    ('{"a": 1}', '{"a": 1} ', False),
    ('{"id": ".*", "n": 1}', '{"id": "6f1c-x", "n": 1}', True),
    ('{"id": ".*", "n": 1}', '{"id": "", "n": 1}', True),
    ('{"id": ".*", "n": 1}', '{"id": "x", "n": 2}', False),
    ('.*', 'anything at all', True),
    ('a.*b.*c', 'abc', True),
    ('a.*b.*c', 'aXbYc', True),
    ('a.*b.*c', 'acb', False),
    ('ab.*ba', 'aba', False),  # the pieces may not overlap
    ('x.*x', 'x', False),
    ('{"t": "(.)"}', '{"t": "(.)"}', True),  # everything else is literal, even regex syntax
    ('{"t": "(.)"}', '{"t": "(a)"}', False),
])
def test_the_runner_matches_like_the_grader(expected, line, verdict):
    assert _conformance_runner().matches(expected, line) is verdict


def test_the_project_carries_the_sample_cases():
    runner = _conformance_runner()
    cases = runner.load(str(ROOT / "tests" / "conformance" / "cases.jsonl"))
    assert len(cases) >= 4
    assert all(len(c.input) == len(c.expect) for c in cases)
    dialects = {json.loads(line)["body"]["type"] for c in cases for line in c.input}
    assert {"command", "query", "CreateUser", "GetUser"} <= dialects


# -- the re-run under .venv (item 7) ------------------------------------------------------------

def test_nothing_is_re_run_when_the_packages_are_there(monkeypatch):
    monkeypatch.setattr(dependencies, "missing", lambda: [])
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("re-ran"))
    dependencies.ensure("prog", ["-m", "x"])


def test_without_the_packages_the_same_command_runs_under_the_venv_once(monkeypatch, tmp_path,
                                                                        capsys):
    venv_python = tmp_path / "python"
    venv_python.write_text("")
    monkeypatch.setattr(dependencies, "missing", lambda: ["zmq"])
    monkeypatch.delenv("CQRS_REEXEC", raising=False)
    ran: list[list[str]] = []

    def execv(path: str, argv: list[str]) -> None:
        ran.append([path, *argv])
        raise OSError("not really")  # execv never returns; failing, it falls through

    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(SystemExit) as exit_:
        dependencies.ensure("cqrs-tap", ["-m", "common.tap", "--count", "1"],
                            venv_python=str(venv_python))
    assert ran == [[str(venv_python), str(venv_python), "-m", "common.tap", "--count", "1"]]
    assert config.value("reexec")  # so the image it starts does not try again
    assert exit_.value.code == 1
    assert "cqrs-tap: pyzmq and msgpack are needed: run `make install`" in capsys.readouterr().err

    ran.clear()  # a second time (already re-run once): no loop, a message instead
    with pytest.raises(SystemExit):
        dependencies.ensure("cqrs-tap", ["-m", "common.tap"], venv_python=str(venv_python))
    assert ran == []


def test_without_a_venv_it_says_what_to_do(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(dependencies, "missing", lambda: ["zmq", "msgpack"])
    monkeypatch.delenv("CQRS_REEXEC", raising=False)
    with pytest.raises(SystemExit) as exit_:
        dependencies.ensure("cqrs-client", ["-m", "router.client"],
                            venv_python=str(tmp_path / "no-such-python"))
    assert exit_.value.code == 1
    assert "cqrs-client: pyzmq and msgpack are needed" in capsys.readouterr().err


def test_the_shared_helper_imports_nothing_heavy():
    """It runs before anything knows pyzmq is there: standard library and pure modules only."""
    import ast

    tree = ast.parse((ROOT / "common" / "dependencies.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"zmq", "msgpack", "common.wire"}, imported
    assert (ROOT / "common" / "__init__.py").read_text().count("import") == 0
