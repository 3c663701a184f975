"""Checks every supervised process makes at start, in common/config.py: an endpoint it binds
must stay on this host unless CURVE is on or --insecure is given (issue 11 item 4), and the
test-only crash switch names known process types."""
from __future__ import annotations

import pytest

from common import config

LOOPBACK = [
    "tcp://127.0.0.1:5550",
    "tcp://127.0.0.1:*",
    "tcp://127.1.2.3:6000",
    "tcp://127.255.255.254:1",
    "tcp://localhost:5550",
    "tcp://LocalHost:5550",
    "tcp://[::1]:5550",
    "ipc:///tmp/cqrs-node-x/events.sock",
    "inproc://events",
]
BEYOND = [
    "tcp://0.0.0.0:5550",
    "tcp://*:5550",
    "tcp://[::]:5550",
    "tcp://10.0.0.7:5550",
    "tcp://192.168.1.2:5550",
    "tcp://eth0:5550",
    "tcp://lo:5550",                   # an interface name: not an address this check trusts
    "tcp://myhost.example.com:5550",
    "tcp://127.0.0.1.example.com:5550",
    "tcp://[::ffff:10.0.0.1]:5550",
    "tcp://128.0.0.1:5550",
    "tcp://:5550",
    "tcp://127.0.0.1",                 # no port: not an endpoint this check understands
    "ws://127.0.0.1:5550",             # another transport: refused rather than guessed
    "pgm://eth0;239.192.1.1:5555",
]


@pytest.mark.parametrize("endpoint", LOOPBACK)
def test_loopback_and_host_only_endpoints_stay_on_the_host(endpoint: str):
    assert config.stays_on_host(endpoint)


@pytest.mark.parametrize("endpoint", BEYOND)
def test_every_other_endpoint_reaches_beyond_the_host(endpoint: str):
    assert not config.stays_on_host(endpoint)


def test_each_process_type_checks_what_it_binds():
    assert config.BOUND_BY["router"] == ("client_endpoint", "write_endpoint", "read_endpoint")
    assert config.BOUND_BY["write"] == ("events_endpoint", "catchup_endpoint")
    assert config.BOUND_BY["read"] == ()
    assert set(config.BOUND_BY["launcher"]) == {"events_endpoint", "catchup_endpoint",
                                                "write_endpoint", "read_endpoint"}


def test_an_exposed_bind_is_named_with_its_flag_and_the_ways_out():
    cfg = config.Config(read_endpoint="tcp://0.0.0.0:5552")
    reason = config.exposed_bind(cfg, config.BOUND_BY["router"], env={})
    assert reason.startswith("tcp://0.0.0.0:5552 (--read-endpoint, CQRS_READ_ENDPOINT) can be "
                             "reached from other hosts")
    for words in ("CQRS_CURVE_SERVER_KEY", "--insecure", "CQRS_INSECURE=1", "loopback"):
        assert words in reason
    # An endpoint this process does not bind is not its to check.
    assert config.exposed_bind(cfg, config.BOUND_BY["write"], env={}) == ""


def test_curve_or_insecure_allows_any_bind():
    cfg = config.Config(events_endpoint="tcp://*:5553")
    binds = config.BOUND_BY["write"]
    assert config.exposed_bind(cfg, binds, env={})
    assert config.exposed_bind(cfg, binds, env={"CQRS_CURVE_SERVER_KEY": "/k/s"}) == ""
    cfg.insecure = True
    assert config.exposed_bind(cfg, binds, env={}) == ""


@pytest.mark.parametrize("argv,env", [
    (["--events-endpoint", "tcp://0.0.0.0:7000"], {}),
    ([], {"CQRS_CATCHUP_ENDPOINT": "tcp://*:7001"}),
], ids=["flag", "variable"])
def test_parse_refuses_an_exposed_bind_as_a_usage_error(capsys, argv, env):
    with pytest.raises(SystemExit) as exit_:
        config.parse(argv, env=env, binds=config.BOUND_BY["write"])
    assert exit_.value.code == 2
    assert "can be reached from other hosts" in capsys.readouterr().err
    # The same settings for a process that binds neither endpoint (a read side) are fine.
    config.parse(argv, env=env, binds=config.BOUND_BY["read"])


@pytest.mark.parametrize("argv,env", [
    (["--insecure"], {}),
    ([], {"CQRS_INSECURE": "1"}),
], ids=["flag", "variable"])
def test_insecure_lets_parse_through_and_reaches_the_children(argv, env):
    cfg = config.parse(["--events-endpoint", "tcp://0.0.0.0:7000", *argv], env=env,
                       binds=config.BOUND_BY["launcher"])
    assert cfg.insecure
    # The launcher hands its settings to its children as flags: they accept the bind too.
    child = config.parse(cfg.to_argv(), env={}, binds=config.BOUND_BY["write"])
    assert child.insecure and child.events_endpoint == "tcp://0.0.0.0:7000"


def test_crash_switch_names_known_process_types(capsys):
    assert config.crash_roles({}) == set()
    assert config.crash_roles({"CQRS_FAULT_CRASH_AT_START": "read, write"}) == {"read", "write"}
    config.crash_if_asked("read", {"CQRS_FAULT_CRASH_AT_START": "write"})  # not this one
    with pytest.raises(config.CrashOnPurpose, match="names read"):
        config.crash_if_asked("read", {"CQRS_FAULT_CRASH_AT_START": "read"})
    with pytest.raises(SystemExit) as exit_:
        config.parse([], env={"CQRS_FAULT_CRASH_AT_START": "reader"})
    assert exit_.value.code == 2
    assert "CQRS_FAULT_CRASH_AT_START names reader" in capsys.readouterr().err
