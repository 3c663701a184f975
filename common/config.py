"""Settings of every process: each one a command-line flag with a CQRS_* environment default.

The same parser serves run_node.py, `python -m write_side` and
`python -m read_side`, so a flag means the same thing everywhere and the
launcher can hand its settings down to its children unchanged.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from typing import Mapping, Sequence

# (flag, env variable, default, type, help). Endpoints left empty are chosen
# by the launcher: ipc sockets in its private runtime folder.
_SETTINGS = (
    ("--events-endpoint", "CQRS_EVENTS_ENDPOINT", "", str,
     "PUB endpoint of the event stream (write side binds, subscribers connect)"),
    ("--catchup-endpoint", "CQRS_CATCHUP_ENDPOINT", "", str,
     "catch-up endpoint for replaying stored events (write side binds)"),
    ("--write-endpoint", "CQRS_WRITE_ENDPOINT", "", str,
     "router endpoint that write sides connect to (router binds)"),
    ("--read-endpoint", "CQRS_READ_ENDPOINT", "", str,
     "router endpoint that read sides connect to (router binds)"),
    ("--client-endpoint", "CQRS_CLIENT_ENDPOINT", "", str,
     "router endpoint serving clients, one JSON request per frame (router binds)"),
    ("--data-dir", "CQRS_DATA_DIR", "", str,
     "folder of the durable event store; empty: a store in the runtime folder, removed at exit"),
    ("--sync", "CQRS_SYNC", "full", str,
     "SQLite synchronous mode: 'full' (each batch synced before any reply) or 'normal' (faster, "
     "may lose the last batches on power loss)"),
    ("--timeout", "CQRS_TIMEOUT", 5.0, float, "seconds a request may wait for its answer"),
    ("--max-line", "CQRS_MAX_LINE", 1 << 20, int, "longest accepted input line in bytes"),
    ("--read-replicas", "CQRS_READ_REPLICAS", 1, int, "read-side processes to start"),
    ("--runtime-dir", "CQRS_RUNTIME_DIR", "", str,
     "private runtime folder (made by the launcher when empty)"),
)
_BOOLS = (
    ("--envelope", "CQRS_ENVELOPE", "wrap replies as {src, dest, body}"),
    ("--no-sample-data", "CQRS_NO_SAMPLE_DATA", "start with an empty store (no sample users)"),
)


@dataclass
class Config:
    events_endpoint: str = ""
    catchup_endpoint: str = ""
    write_endpoint: str = ""
    read_endpoint: str = ""
    client_endpoint: str = ""
    data_dir: str = ""
    sync: str = "full"
    timeout: float = 5.0
    max_line: int = 1 << 20
    read_replicas: int = 1
    runtime_dir: str = ""
    envelope: bool = False
    no_sample_data: bool = False

    def to_argv(self) -> list[str]:
        """Flags that reproduce this config in a child process."""
        argv: list[str] = []
        for flag, _env, _default, _type, _help in _SETTINGS:
            argv += [flag, str(getattr(self, _dest(flag)))]
        for flag, _env, _help in _BOOLS:
            if getattr(self, _dest(flag)):
                argv.append(flag)
        return argv


# Service mode (each process type on its own, e.g. under the Procfile): endpoints not
# given default to these loopback ports, and the store to ./data.
SERVICE_DEFAULTS = {
    "client_endpoint": "tcp://127.0.0.1:5550",
    "write_endpoint": "tcp://127.0.0.1:5551",
    "read_endpoint": "tcp://127.0.0.1:5552",
    "events_endpoint": "tcp://127.0.0.1:5553",
    "catchup_endpoint": "tcp://127.0.0.1:5554",
    "data_dir": "data",
}


def with_service_defaults(cfg: Config) -> Config:
    for name, value in SERVICE_DEFAULTS.items():
        if not getattr(cfg, name):
            setattr(cfg, name, value)
    return cfg


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def parser(description: str, env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if env is None else env
    ap = argparse.ArgumentParser(description=description)
    for flag, var, default, kind, text in _SETTINGS:
        ap.add_argument(flag, type=kind, default=kind(env.get(var, default)),
                        help=f"{text} [env {var}, default {default!r}]")
    for flag, var, text in _BOOLS:
        ap.add_argument(flag, action="store_true", default=_truthy(env.get(var)),
                        help=f"{text} [env {var}=1]")
    return ap


def parse(argv: Sequence[str] | None = None, description: str = "",
          env: Mapping[str, str] | None = None) -> Config:
    ns = parser(description, env).parse_args(argv)
    cfg = Config(**{f.name: getattr(ns, f.name) for f in fields(Config)})
    if cfg.sync not in ("full", "normal"):
        raise SystemExit(f"--sync must be 'full' or 'normal', not {cfg.sync!r}")
    return cfg


# A child exiting with this status (EX_CONFIG) cannot work with the settings or storage it
# was given (corrupt store, folder locked by another node): restarting it will not help.
FATAL_EXIT = 78
