"""--write-sides: how many write sides run_node.py starts, which store allows more than
one, and the endpoints each binds (common.config, router.launcher)."""
from __future__ import annotations

import pytest

from common import config
from router import launcher

PG = "postgresql://app@db.internal:5432/cqrs"
LAUNCHER = config.BOUND_BY["launcher"]
WRITE = config.BOUND_BY["write"]


def usage_error(capsys, argv: list[str], env: dict | None = None,
                binds: tuple = LAUNCHER) -> str:
    with pytest.raises(SystemExit) as exit_:
        config.parse(argv, env=env or {}, binds=binds)
    assert exit_.value.code == 2
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture
def postgresql_parses(monkeypatch):
    """Until the PostgreSQL engine adds its scheme to common.store_url, these tests add it
    here, so the write-side rules are checked with the URL they are for."""
    from common import store_url

    if "postgresql" not in store_url.SCHEMES:
        monkeypatch.setattr(store_url, "SCHEMES", (*store_url.SCHEMES, "postgresql"))
        original = store_url.parse

        def parse(url: str) -> store_url.StoreURL:
            if url.startswith("postgresql://"):
                return store_url.StoreURL("postgresql", url, url)
            return original(url)

        monkeypatch.setattr(store_url, "parse", parse)


def test_one_write_side_by_default():
    assert config.parse([], env={}).write_sides == 1


@pytest.mark.parametrize("argv,env", [
    (["--write-sides", "2"], {}),
    ([], {"CQRS_WRITE_SIDES": "2"}),
    (["--write-sides", "2", "--store", "sqlite://"], {}),
    (["--write-sides", "3", "--data-dir", "/tmp/x"], {}),
])
def test_more_than_one_write_side_on_a_sqlite_store_is_a_usage_error(capsys, argv, env):
    err = usage_error(capsys, argv, env)
    assert "CQRS_WRITE_SIDES" in err and "has one writer" in err and "postgresql://" in err


@pytest.mark.parametrize("value", ["0", "-1", "65"])
def test_the_number_of_write_sides_is_range_checked(capsys, value):
    assert "--write-sides (CQRS_WRITE_SIDES) must be from 1 to 64" in usage_error(
        capsys, ["--write-sides", value, "--store", "sqlite://"])


def test_several_write_sides_on_a_shared_store(postgresql_parses):
    cfg = config.parse(["--write-sides", "3", "--store", PG], env={}, binds=LAUNCHER)
    assert cfg.write_sides == 3 and config.shared_store(cfg.store)
    assert not config.shared_store("") and not config.shared_store("sqlite://")


def test_endpoint_lists():
    assert config.endpoint_list("tcp://a:1") == ["tcp://a:1"]
    assert config.endpoint_list(" tcp://a:1 , tcp://b:2,") == ["tcp://a:1", "tcp://b:2"]
    assert config.endpoint_list("") == []


def test_the_launcher_takes_one_events_endpoint_per_write_side(capsys, postgresql_parses):
    two = "tcp://127.0.0.1:7000,tcp://127.0.0.1:7002"
    cfg = config.parse(["--write-sides", "2", "--store", PG, "--events-endpoint", two], env={},
                       binds=LAUNCHER)
    assert cfg.events_endpoint == two
    err = usage_error(capsys, ["--write-sides", "3", "--store", PG, "--events-endpoint", two])
    assert "--events-endpoint (CQRS_EVENTS_ENDPOINT) names 2 endpoints, not 3" in err


def test_a_write_side_binds_one_events_and_one_catchup_endpoint(capsys, postgresql_parses):
    # Started by run_node.py with --write-sides 3, a write side gets its own pair.
    config.parse(["--write-sides", "3", "--store", PG, "--events-endpoint", "ipc:///r/e-1.sock",
                  "--catchup-endpoint", "ipc:///r/c-1.sock"], env={}, binds=WRITE)
    err = usage_error(capsys, ["--events-endpoint", "tcp://127.0.0.1:1,tcp://127.0.0.1:3"],
                      binds=WRITE)
    assert "names 2 endpoints, not 1: a write side binds one" in err
    err = usage_error(capsys, ["--catchup-endpoint", "ipc:///a,ipc:///b"], binds=WRITE)
    assert "--catchup-endpoint" in err


def test_a_read_side_follows_any_number_of_write_sides():
    cfg = config.parse(["--events-endpoint", "ipc:///a,ipc:///b,ipc:///c"], env={},
                       binds=config.BOUND_BY["read"])
    assert config.endpoint_list(cfg.events_endpoint) == ["ipc:///a", "ipc:///b", "ipc:///c"]


def test_every_endpoint_of_a_list_is_checked_for_exposure(capsys, postgresql_parses):
    err = usage_error(capsys, ["--write-sides", "2", "--store", PG, "--events-endpoint",
                               "tcp://127.0.0.1:7000,tcp://0.0.0.0:7002"])
    assert "tcp://0.0.0.0:7002 (--events-endpoint, CQRS_EVENTS_ENDPOINT) can be reached" in err


# ---- the launcher's endpoints --------------------------------------------------------------

def test_one_write_side_keeps_the_endpoint_names_it_always_had():
    cfg = config.Config()
    pairs = launcher._fill_endpoints(cfg, "/run/n")
    assert pairs == [("ipc:///run/n/events.sock", "ipc:///run/n/catchup.sock")]
    assert (cfg.events_endpoint, cfg.catchup_endpoint) == pairs[0]
    assert (cfg.write_endpoint, cfg.read_endpoint) == ("ipc:///run/n/write.sock",
                                                       "ipc:///run/n/read.sock")


def test_each_of_several_write_sides_gets_its_own_endpoints():
    cfg = config.Config(write_sides=3)
    pairs = launcher._fill_endpoints(cfg, "/run/n")
    assert pairs == [(f"ipc:///run/n/events-{i}.sock", f"ipc:///run/n/catchup-{i}.sock")
                     for i in (1, 2, 3)]
    # The lists the read sides get, in the same order.
    assert config.endpoint_list(cfg.events_endpoint) == [e for e, _ in pairs]
    assert config.endpoint_list(cfg.catchup_endpoint) == [c for _, c in pairs]


def test_a_tcp_events_endpoint_gets_its_catchup_on_the_next_port():
    cfg = config.Config(write_sides=2, events_endpoint="tcp://127.0.0.1:7000,ipc:///x/ev")
    assert launcher._fill_endpoints(cfg, "/run/n") == [
        ("tcp://127.0.0.1:7000", "tcp://127.0.0.1:7001"),
        ("ipc:///x/ev", "ipc:///run/n/catchup-2.sock")]
    one = config.Config(events_endpoint="tcp://127.0.0.1:7000")
    assert launcher._fill_endpoints(one, "/r") == [("tcp://127.0.0.1:7000",
                                                    "tcp://127.0.0.1:7001")]


def test_given_catchup_endpoints_are_kept():
    cfg = config.Config(write_sides=2, events_endpoint="ipc:///a,ipc:///b",
                        catchup_endpoint="ipc:///c,ipc:///d")
    assert launcher._fill_endpoints(cfg, "/r") == [("ipc:///a", "ipc:///c"),
                                                   ("ipc:///b", "ipc:///d")]
