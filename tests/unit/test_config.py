"""Settings in one place: common/config.py knows and alone reads every CQRS_* variable."""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from common import backoff, config, store_url, tap
from common.backoff import Backoff
from router import client, supervisor

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bCQRS_[A-Z0-9_]*[A-Z0-9]\b")
# Not the node's source: the tests set variables on purpose, and the baseline is a
# standalone implementation of the protocol that must not import this project.
EXCLUDED = {ROOT / "tests", ROOT / "bench" / "baseline.py"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".txt", ".sh", ".yml", ".yaml"}
TEXT_NAMES = {"Makefile", "Procfile", "Dockerfile"}


def source_files(suffixes: set[str], names: frozenset[str] = frozenset()) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.endswith(".egg-info")
                   and d not in ("__pycache__", "build", "dist")
                   and here / d not in EXCLUDED]
        found += [here / f for f in files
                  if (Path(f).suffix in suffixes or f in names) and here / f not in EXCLUDED]
    return sorted(found)


def cqrs_names_read(source: str) -> set[tuple[int, str]]:
    """(line, name) of the CQRS_* names that code (not prose) uses: a string that is a
    variable name or its prefix, and f-strings that build one."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and re.fullmatch(r"CQRS_[A-Z0-9_]*", node.value)):
            found.add((node.lineno, node.value))
        elif (isinstance(node, ast.JoinedStr) and node.values
              and isinstance(node.values[0], ast.Constant)
              and str(node.values[0].value).startswith("CQRS_")):
            found.add((node.lineno, str(node.values[0].value)))
    return found


def test_every_variable_mentioned_in_the_source_is_known_to_config():
    unknown: dict[str, list[str]] = {}
    seen = set()
    for path in source_files(TEXT_SUFFIXES, frozenset(TEXT_NAMES)):
        for name in NAME.findall(path.read_text(errors="replace")):
            seen.add(name)
            if name not in config.VARIABLES:
                unknown.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert not unknown, f"CQRS_* variables that common/config.py does not know: {unknown}"
    assert seen == set(config.VARIABLES)  # the scan did read the source (config.py at least)


def test_the_checker_sees_a_variable_read_in_code_but_not_in_prose():
    code = ('"""Reads CQRS_FOO from the environment."""\nimport os\n'
            'a = os.environ.get("CQRS_FOO")\nb = os.getenv(f"CQRS_{x}_ENDPOINT")\n'
            'c = os.environ["CQRS_" + y]\nd = "set CQRS_FOO to 1"\n')
    assert cqrs_names_read(code) == {(3, "CQRS_FOO"), (4, "CQRS_"), (5, "CQRS_")}


def test_no_module_but_config_names_a_variable_in_code():
    own = ROOT / "common" / "config.py"
    assert len(cqrs_names_read(own.read_text())) >= len(config.VARIABLES)  # the checker works
    readers = {str(path.relative_to(ROOT)): sorted(names)
               for path in source_files({".py"}) if path != own
               for names in [cqrs_names_read(path.read_text())] if names}
    assert not readers, f"read CQRS_* variables outside common/config.py: {readers}"


def test_readme_lists_every_variable_and_flag():
    readme = (ROOT / "README.md").read_text()
    missing = [s.var for s in config.VARIABLES.values() if s.var not in readme]
    missing += [s.flag for s in config.FLAGS if f"`{s.flag}" not in readme]
    assert not missing


@pytest.mark.parametrize("help_text", [
    lambda: config.parser("node", env={}).format_help(),
    lambda: config.parser("node", env={"CQRS_SYNC": "normal", "CQRS_DATA_DIR": ""}).format_help(),
], ids=["empty environment", "some variables set"])
def test_help_shows_every_flag_with_its_variable_and_a_real_default(help_text):
    text = " ".join(help_text().split())  # argparse wraps lines anywhere
    assert "default ''" not in text and "default: ]" not in text and "default: ;" not in text
    for s in config.FLAGS:
        assert f"env {s.var}" in text
        assert s.flag in text
    assert text.count("default: ") == len(config.FLAGS) + len(config.ENVIRONMENT) + len(
        config.TEST_SWITCHES)
    for s in config.ENVIRONMENT + config.TEST_SWITCHES:
        assert s.var in text
    assert "service mode: tcp://127.0.0.1:5553" in text
    assert "sqlite:////abs/path/events.sqlite3" in text


def test_tool_help_names_variables_and_defaults(capsys):
    for show in (lambda: tap.parse_args(["--help"]), lambda: client.main(["--help"])):
        with pytest.raises(SystemExit) as exit_:
            show()
        assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for var in ("CQRS_EVENTS_ENDPOINT", "CQRS_CATCHUP_ENDPOINT", "CQRS_CLIENT_ENDPOINT"):
        assert f"env {var}" in text
    assert "default: tcp://127.0.0.1:5550" in text and "default ''" not in text


def test_tools_take_their_defaults_from_the_environment(monkeypatch):
    monkeypatch.setenv("CQRS_EVENTS_ENDPOINT", "tcp://10.0.0.1:7000")
    monkeypatch.setenv("CQRS_CATCHUP_ENDPOINT", "tcp://10.0.0.1:7001")
    args = tap.parse_args([])
    assert (args.endpoint, args.catchup_endpoint) == ("tcp://10.0.0.1:7000", "tcp://10.0.0.1:7001")


def test_env_values_reach_the_config():
    env = {"CQRS_EVENTS_ENDPOINT": "tcp://h:1", "CQRS_CATCHUP_ENDPOINT": "tcp://h:2",
           "CQRS_WRITE_ENDPOINT": "tcp://h:3", "CQRS_READ_ENDPOINT": "tcp://h:4",
           "CQRS_CLIENT_ENDPOINT": "tcp://h:5", "CQRS_DATA_DIR": "/d",
           "CQRS_STORE": "sqlite:////s/events.sqlite3", "CQRS_SYNC": "normal",
           "CQRS_TIMEOUT": "2.5", "CQRS_MAX_LINE": "99", "CQRS_READ_REPLICAS": "3",
           "CQRS_RUNTIME_DIR": "/r", "CQRS_ENVELOPE": "1", "CQRS_NO_SAMPLE_DATA": "yes",
           "CQRS_FAULT_MAX_PAGES": "12", "CQRS_INSECURE": "1", "CQRS_HTTP_PORT": "8080",
           "CQRS_HTTP_HOST": "127.0.0.2", "CQRS_WRITE_SIDES": "1"}
    cfg = config.parse([], env=env)
    assert cfg == config.Config("tcp://h:1", "tcp://h:2", "tcp://h:3", "tcp://h:4", "tcp://h:5",
                                "/d", "sqlite:////s/events.sqlite3", "normal", 2.5, 99, 3, "/r",
                                True, True, insecure=True, http_port=8080,
                                http_host="127.0.0.2", fault_max_pages=12)
    # Every flag-backed field is covered above.
    assert {s.var for s in config.FLAGS} <= set(env)


def test_flags_win_over_the_environment_and_empty_means_default():
    env = {"CQRS_SYNC": "normal", "CQRS_TIMEOUT": "", "CQRS_READ_REPLICAS": "4"}
    cfg = config.parse(["--sync", "full", "--read-replicas", "2"], env=env)
    assert (cfg.sync, cfg.timeout, cfg.read_replicas) == ("full", 5.0, 2)
    assert config.parse([], env={}) == config.Config()


def test_to_argv_reproduces_the_config_in_a_child():
    cfg = config.parse(["--envelope", "--store", "sqlite://", "--timeout", "3"], env={})
    assert config.parse(cfg.to_argv(), env={}) == cfg


def test_environment_only_settings():
    env = {"CQRS_SNAPSHOT_MIN": "20", "CQRS_LOG_LEVEL": "debug", "CQRS_FAULT_DROP_EVERY": "6",
           "CQRS_CURVE_SERVER_KEY": "/k/server.key_secret", "CQRS_CURVE_ALLOWED": "/k/allowed",
           "CQRS_CURVE_SERVER_PUBLIC": "/k/server.key",
           "CQRS_CURVE_CLIENT_KEY": "/k/alice.key_secret"}
    assert config.value("snapshot_min", env) == 20
    assert config.value("snapshot_min", {}) == 250_000
    assert config.value("snapshot_min", {"CQRS_SNAPSHOT_MIN": ""}) == 250_000
    assert config.value("log_level", env) == "debug"
    assert config.value("fault_drop_every", env) == 6
    env.update(CQRS_CURVE_WRITERS="/k/writers", CQRS_CURVE_READERS="/k/readers")
    assert config.curve_settings(env) == config.CurveSettings(
        server_key="/k/server.key_secret", allowed="/k/allowed", writers="/k/writers",
        readers="/k/readers", server_public="/k/server.key", client_key="/k/alice.key_secret")
    assert config.curve_settings({}) == config.CurveSettings()


def test_launcher_hands_its_pid_and_runtime_folder_to_children():
    env = config.child_env({"PATH": "/bin"}, 4242, "/tmp/cqrs-node-x")
    assert env["PATH"] == "/bin"
    assert config.value("launcher_pid", env) == 4242
    assert config.value("runtime_dir", env) == "/tmp/cqrs-node-x"
    assert config.value("launcher_pid", {}) == 0
    reexec: dict[str, str] = {}
    assert not config.value("reexec", reexec)
    config.put(reexec, "reexec", True)
    assert config.value("reexec", reexec)


@pytest.mark.parametrize("argv,env,message", [
    (["--sync", "fast"], {}, "--sync must be 'full' or 'normal', not 'fast'"),
    ([], {"CQRS_SYNC": "off"}, "--sync must be 'full' or 'normal', not 'off'"),
    (["--store", "foo://x"], {}, "known schemes: sqlite"),
    ([], {"CQRS_STORE": "sqlite://host/x"}, "known schemes: sqlite"),
    ([], {"CQRS_SNAPSHOT_MIN": "many"}, "CQRS_SNAPSHOT_MIN must be a whole number"),
    ([], {"CQRS_TIMEOUT": "soon"}, "--timeout"),
])
def test_bad_settings_are_usage_errors(capsys, argv, env, message):
    with pytest.raises(SystemExit) as exit_:
        config.parse(argv, env=env)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_store_stops_run_node_before_any_process_starts(capsys, monkeypatch):
    # In this process: the unit folder's guard fails the test if anything is started.
    # (tests/e2e/test_settings.py runs the same as a real command.)
    import run_node

    for var in list(os.environ):
        if var.startswith("CQRS_"):
            monkeypatch.delenv(var)
    with pytest.raises(SystemExit) as exit_:
        run_node.main(["--store", "foo://x"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert "--store" in err and out == ""
    for scheme in store_url.SCHEMES:
        assert scheme in err.split("known schemes:")[1]
    assert "events endpoint" not in err  # printed once the runtime folder exists


def test_service_defaults_leave_no_data_folder_beside_a_store_url():
    assert config.with_service_defaults(config.Config()).data_dir == "data"
    cfg = config.with_service_defaults(config.Config(store="sqlite:////s/events.sqlite3"))
    assert cfg.data_dir == ""
    assert cfg.events_endpoint == "tcp://127.0.0.1:5553"


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_stable_run():
    b = Backoff()
    assert [b.next(0.0) for _ in range(8)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert b.next(backoff.STABLE_AFTER) == 2.0  # not longer than STABLE_AFTER: no reset
    assert b.next(backoff.STABLE_AFTER + 0.1) == 0.05
    assert b.next(0.0) == 0.1


class _Died:
    """A stand-in for a child process that exited with status 1."""
    pid = 1
    returncode = 1


def test_supervisor_restarts_by_the_backoff():
    sup = supervisor.Supervisor(cwd=str(ROOT))
    child = supervisor.Child("read side 1", ["false"])
    delays = []
    # Four deaths: under the crash-loop limit (tests/unit/test_supervisor.py has that).
    for ran_for in (0.0, 0.0, backoff.STABLE_AFTER + 1, 0.0):
        child.proc, child.started = _Died(), 100.0
        sup._schedule_restart(child, 100.0 + ran_for)
        delays.append(round(child.restart_at - (100.0 + ran_for), 6))
    assert delays == [0.05, 0.1, 0.05, 0.1]
