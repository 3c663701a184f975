"""Every setting of the node, and the only module that reads a CQRS_* environment variable.

Settings come in four tables below:

  FLAGS              a command-line flag with a CQRS_* environment default (the flag wins).
                     The same parser serves run_node.py, `python -m write_side`,
                     `python -m read_side` and `python -m router`, so a flag means the same
                     thing everywhere and the launcher hands its settings down unchanged.
  ENVIRONMENT        environment only: log level, snapshot size, CURVE key files.
  TEST_SWITCHES      environment only, for tests: faults injected on purpose.
  LAUNCHER_TO_CHILD  set by run_node.py for its own processes, never by hand.

Other modules ask for a value by its field name (`value("snapshot_min")`, `Config`,
`curve_settings()`), never by its variable, so a variable is named once, here.
Pure standard library: run_node.py imports it before it knows pyzmq is there.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import textwrap
from dataclasses import dataclass, fields
from typing import Any, Mapping, MutableMapping, Sequence

from common import store_url


@dataclass(frozen=True)
class Setting:
    name: str  # the Config field (flags) or the name other modules ask value() for
    var: str
    default: str | int | float | bool  # its type is the setting's type
    text: str
    # The default in words, where the value alone says nothing (an empty endpoint is
    # chosen by the launcher, an empty folder means a throwaway one, ...).
    shown_default: str = ""
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def value(self, env: Mapping[str, str] | None = None) -> Any:
        """The value in `env` (os.environ by default); unset or empty means the default.
        ValueError naming the variable when it does not convert."""
        raw = (os.environ if env is None else env).get(self.var, "")
        if raw == "":
            return self.default
        kind = type(self.default)
        if kind is bool:
            return _truthy(raw)
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{self.var} must be {_KIND_WORDS[kind]}, not {raw!r}") from None

    def describe_default(self) -> str:
        if self.shown_default:
            words = self.shown_default
        elif isinstance(self.default, bool):
            words = "on" if self.default else "off"
        elif isinstance(self.default, float):
            words = f"{self.default:g}"
        else:
            words = str(self.default)
        service = SERVICE_DEFAULTS.get(self.name)
        return f"{words}; service mode: {service}" if service else words


_KIND_WORDS = {int: "a whole number", float: "a number", str: "text"}
_IPC = "an ipc socket in the runtime folder"

# Service mode (each process type on its own, e.g. under the Procfile): endpoints not
# given default to these loopback ports, and the store (when --store is not given) to ./data.
SERVICE_DEFAULTS = {
    "client_endpoint": "tcp://127.0.0.1:5550",
    "write_endpoint": "tcp://127.0.0.1:5551",
    "read_endpoint": "tcp://127.0.0.1:5552",
    "events_endpoint": "tcp://127.0.0.1:5553",
    "catchup_endpoint": "tcp://127.0.0.1:5554",
    "data_dir": "data",
    "http_port": 5555,  # the monitor's HTTP port (python -m monitor)
}

FLAGS = (
    Setting("events_endpoint", "CQRS_EVENTS_ENDPOINT", "",
            "PUB endpoint of the event stream (write side binds, subscribers connect); with "
            "several write sides a comma-separated list, one endpoint per write side",
            _IPC, "E"),
    Setting("catchup_endpoint", "CQRS_CATCHUP_ENDPOINT", "",
            "catch-up endpoint for replaying stored events (write side binds); with several "
            "write sides a comma-separated list, in the order of the events endpoints",
            f"{_IPC}, or the events endpoint's port + 1 when that is TCP", "E"),
    Setting("write_endpoint", "CQRS_WRITE_ENDPOINT", "",
            "router endpoint that write sides connect to (router binds)", _IPC, "E"),
    Setting("read_endpoint", "CQRS_READ_ENDPOINT", "",
            "router endpoint that read sides connect to (router binds)", _IPC, "E"),
    Setting("client_endpoint", "CQRS_CLIENT_ENDPOINT", "",
            "router endpoint serving clients, one JSON request per frame (router binds)",
            "none (run_node.py serves stdin and stdout)", "E"),
    Setting("data_dir", "CQRS_DATA_DIR", "",
            "folder of the durable store: the same as --store sqlite:////DIR/events.sqlite3, "
            "plus the read sides' snapshots and the lock file there",
            "none (with no --store either, a throwaway store in the runtime folder, "
            "removed at exit)", "DIR"),
    Setting("store", "CQRS_STORE", "",
            "event store URL: sqlite:////abs/path/events.sqlite3 (four slashes before an "
            "absolute path), sqlite:///relative/path, or sqlite:// (in memory); known "
            f"schemes: {', '.join(store_url.SCHEMES)}",
            "none (the store of --data-dir, else a throwaway store in the runtime folder)",
            "URL"),
    Setting("sync", "CQRS_SYNC", "full",
            "SQLite synchronous mode: 'full' (each batch synced before any reply) or 'normal' "
            "(faster, may lose the last batches on power loss)", metavar="{full,normal}"),
    Setting("timeout", "CQRS_TIMEOUT", 5.0, "seconds a request may wait for its answer",
            metavar="S"),
    Setting("max_line", "CQRS_MAX_LINE", 1 << 20, "longest accepted input line in bytes",
            metavar="N"),
    Setting("read_replicas", "CQRS_READ_REPLICAS", 1, "read-side processes to start",
            metavar="N"),
    Setting("write_sides", "CQRS_WRITE_SIDES", 1,
            "write-side processes run_node.py starts; more than one needs a store that "
            "several processes may write (postgresql://...): a SQLite store has one writer",
            metavar="N"),
    Setting("runtime_dir", "CQRS_RUNTIME_DIR", "", "private folder of the ipc sockets",
            "a new cqrs-node-* temporary folder (mode 0700), removed at exit", "DIR"),
    Setting("envelope", "CQRS_ENVELOPE", False, "wrap replies as {src, dest, body}"),
    Setting("no_sample_data", "CQRS_NO_SAMPLE_DATA", False,
            "start with an empty store (no sample users)"),
    Setting("insecure", "CQRS_INSECURE", False,
            "allow binding a TCP endpoint on a non-loopback address without CURVE: whoever "
            "can reach it can then send commands and read every event and reply, so only "
            "on a network you trust entirely"),
    Setting("http_port", "CQRS_HTTP_PORT", 0,
            "TCP port of the monitor: /metrics (Prometheus) and the live page; run_node.py "
            "starts the monitor only when this is set", "0 (off: no monitor)", "P"),
    Setting("http_host", "CQRS_HTTP_HOST", "127.0.0.1",
            "address the monitor's HTTP server binds; anything but loopback needs --insecure, "
            "CURVE or not (CURVE does not cover HTTP)", metavar="HOST"),
)
SYNC_MODES = ("full", "normal")
# The numbers each numeric setting may take, both ends included (a float must also be
# finite, which the ends imply). parse() refuses anything else as a usage error, flags and
# variables alike, before any process starts: a zero timeout or zero read replicas would
# otherwise start a node that answers nothing or silently differs from what was asked.
_NO_LIMIT = (1 << 63) - 1  # the largest integer the wire between processes carries
RANGES: dict[str, tuple[float, float]] = {
    "timeout": (0.001, 86_400.0),      # more than zero, at most a day
    "max_line": (1, 1 << 30),          # at least a byte, at most 1 GiB held for one line
    "read_replicas": (1, 64),          # one process per replica
    "write_sides": (1, 64),            # one process per write side
    "snapshot_min": (1, _NO_LIMIT),
    "fault_drop_every": (0, _NO_LIMIT),
    "fault_max_pages": (0, _NO_LIMIT),
}


def out_of_range(name: str, val: Any) -> str:
    """'' when the setting's value is in RANGES (or it has no range), else why not, naming
    its flag (if it has one) and its variable."""
    if name not in RANGES:
        return ""
    low, high = RANGES[name]
    if low <= val <= high:  # False for NaN too
        return ""
    s = _ALL[name]
    who = f"{s.flag} ({s.var})" if s in FLAGS else s.var
    allowed = (f"at least {_number(low)}" if high == _NO_LIMIT else
               f"from {_number(low)} to {_number(high)}")
    return f"{who} must be {allowed}, not {_number(val)}"


def _number(val: float) -> str:
    return str(val) if isinstance(val, int) else f"{val:g}"

ENVIRONMENT = (
    Setting("log_level", "CQRS_LOG_LEVEL", "INFO",
            "stderr log level (DEBUG, INFO, WARNING, ERROR)"),
    Setting("snapshot_min", "CQRS_SNAPSHOT_MIN", 250_000,
            "read sides with a data folder snapshot their projections once the state has "
            "grown by this many events and by a quarter since the last snapshot"),
    Setting("curve_server_key", "CQRS_CURVE_SERVER_KEY", "",
            "secret key file of the binding processes (router, write side): turns CURVE on",
            "none (no CURVE)"),
    Setting("curve_allowed", "CQRS_CURVE_ALLOWED", "",
            "folder of the clients' public key files (*.key): cqrs-client, cqrs-tap",
            "none (any CURVE peer may connect)"),
    Setting("curve_writers", "CQRS_CURVE_WRITERS", "",
            "folder of the write sides' public key files (*.key): the only keys the router's "
            "write endpoint accepts", "none (with CURVE on, the router refuses to start)"),
    Setting("curve_readers", "CQRS_CURVE_READERS", "",
            "folder of the read sides' public key files (*.key): the only keys the router's "
            "read endpoint accepts; the write side's event and catch-up endpoints accept "
            "these and the clients' keys (taps)",
            "none (with CURVE on, the router and the write side refuse to start)"),
    Setting("curve_server_public", "CQRS_CURVE_SERVER_PUBLIC", "",
            "the servers' public key file, on connecting processes", "none"),
    Setting("curve_client_key", "CQRS_CURVE_CLIENT_KEY", "",
            "a connecting process's own secret key file (with CQRS_CURVE_SERVER_PUBLIC)", "none"),
)

# Faults injected on purpose so the tests can provoke what is otherwise rare. Never set
# them in production.
TEST_SWITCHES = (
    Setting("fault_drop_every", "CQRS_FAULT_DROP_EVERY", 0,
            "the publisher skips every Nth publish (0: never)"),
    Setting("fault_max_pages", "CQRS_FAULT_MAX_PAGES", 0,
            "the SQLite file is capped at N pages, so a full disk can be provoked (0: no cap)"),
    Setting("fault_crash_at_start", "CQRS_FAULT_CRASH_AT_START", "",
            "the named process types (comma-separated: router, write, read) raise an error "
            "as they start, so a crash loop can be provoked", "none"),
)

LAUNCHER_TO_CHILD = (
    # With CQRS_RUNTIME_DIR (a flag's variable, also set in the children's environment),
    # read by common.lifeline before any argument is parsed.
    Setting("launcher_pid", "CQRS_LAUNCHER_PID", 0,
            "the launcher's pid: a child dies with it (0: the parent process)"),
    Setting("reexec", "CQRS_REEXEC", False,
            "run_node.py already re-ran itself under the project's .venv (no second time)"),
)

_ALL = {s.name: s for s in FLAGS + ENVIRONMENT + TEST_SWITCHES + LAUNCHER_TO_CHILD}
# Every variable this node knows, by name.
VARIABLES = {s.var: s for s in _ALL.values()}


def setting(name: str) -> Setting:
    return _ALL[name]


def value(name: str, env: Mapping[str, str] | None = None) -> Any:
    """A setting's value from the environment (os.environ by default), by its name."""
    return _ALL[name].value(env)


def put(env: MutableMapping[str, str], name: str, val: str | int | bool) -> None:
    """Set a setting in an environment a process will start with."""
    env[_ALL[name].var] = ("1" if val else "") if isinstance(val, bool) else str(val)


def child_env(base: Mapping[str, str], launcher_pid: int, runtime_dir: str) -> dict[str, str]:
    """The environment of the launcher's children: whom to die with and which folder to
    clean up then (see common.lifeline)."""
    env = dict(base)
    put(env, "launcher_pid", launcher_pid)
    put(env, "runtime_dir", runtime_dir)
    return env


@dataclass(frozen=True)
class CurveSettings:
    """Paths of the CURVE key files; all empty: no CURVE (see common.security)."""
    server_key: str = ""
    allowed: str = ""
    writers: str = ""
    readers: str = ""
    server_public: str = ""
    client_key: str = ""


def curve_settings(env: Mapping[str, str] | None = None) -> CurveSettings:
    return CurveSettings(**{f.name: value(f"curve_{f.name}", env) for f in fields(CurveSettings)})


@dataclass
class Config:
    events_endpoint: str = ""
    catchup_endpoint: str = ""
    write_endpoint: str = ""
    read_endpoint: str = ""
    client_endpoint: str = ""
    data_dir: str = ""
    store: str = ""  # a store URL (common.store_url); empty: see store_url.resolve
    sync: str = "full"
    timeout: float = 5.0
    max_line: int = 1 << 20
    read_replicas: int = 1
    runtime_dir: str = ""
    envelope: bool = False
    no_sample_data: bool = False
    insecure: bool = False
    http_port: int = 0
    http_host: str = "127.0.0.1"
    write_sides: int = 1
    # Environment only (test switch): read by every process from its own environment, so
    # to_argv leaves it out.
    fault_max_pages: int = 0

    def to_argv(self) -> list[str]:
        """Flags that reproduce this config in a child process."""
        argv: list[str] = []
        for s in FLAGS:
            val = getattr(self, s.name)
            if isinstance(s.default, bool):
                argv += [s.flag] if val else []
            else:
                argv += [s.flag, str(val)]
        return argv


def with_service_defaults(cfg: Config) -> Config:
    for name, default in SERVICE_DEFAULTS.items():
        # A store URL names the store on its own: no ./data folder beside it.
        if name == "data_dir" and cfg.store:
            continue
        if not getattr(cfg, name):
            setattr(cfg, name, default)
    return cfg


# ---- what a process may bind ----------------------------------------------------------------

# The endpoints each kind of process binds (it connects to the others). run_node.py binds
# all but the client endpoint, through its router and its write side.
BOUND_BY = {
    "router": ("client_endpoint", "write_endpoint", "read_endpoint"),
    "write": ("events_endpoint", "catchup_endpoint"),
    "read": (),
    "launcher": ("events_endpoint", "catchup_endpoint", "write_endpoint", "read_endpoint"),
    "monitor": ("http_host",),  # the launcher too, when it starts a monitor
}
_HOST_ONLY_TRANSPORTS = ("ipc://", "inproc://")


def stays_on_host(endpoint: str) -> bool:
    """Whether a bound endpoint can only be reached from this host: ipc and inproc, and TCP
    on a loopback address (127.x.x.x, ::1 in brackets, localhost). Anything else can be
    reached from elsewhere: 0.0.0.0, *, any other address, an interface name (which names
    no address this check could trust), a host name, any other transport."""
    if endpoint.startswith(_HOST_ONLY_TRANSPORTS):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host, colon, _port = endpoint[len("tcp://"):].rpartition(":")
    if not colon:
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_list(value: str) -> list[str]:
    """The endpoints a setting names, in order: one, or several separated by commas (the
    events and catch-up endpoints of several write sides). No ZeroMQ endpoint this node
    binds holds a comma (the launcher refuses a runtime folder with one in its name)."""
    return [part.strip() for part in value.split(",") if part.strip()]


# Store URL schemes whose store several write sides may share: the database arbitrates
# between them (a conflicting batch is retried, a command id is stored once). Any other
# store has one writer: SQLite's folder lock keeps out a second write side on the same
# host, and one in memory is the process's own.
SHARED_STORE_SCHEMES = ("postgresql",)


def shared_store(store: str) -> bool:
    """Whether several write sides may write the store `store` names (a checked URL; empty
    means the SQLite store of the data or runtime folder)."""
    return bool(store) and store_url.parse(store).scheme in SHARED_STORE_SCHEMES


def _write_side_problem(cfg: Config, binds: Sequence[str]) -> str:
    """Why these write-side settings cannot work for a process binding `binds`, or ''."""
    n = cfg.write_sides
    if n > 1 and not shared_store(cfg.store):
        store = cfg.store or "the SQLite store of --data-dir (or of the runtime folder)"
        return (f"--write-sides {n} ({_ALL['write_sides'].var}): {store} has one writer; "
                "several write sides need a store they can share (postgresql://...)")
    if "events_endpoint" not in binds:
        return ""  # it only connects: a read side follows any number of streams
    # One write side binds one pair; run_node.py (which also binds the router's write
    # endpoint) binds a pair per write side through the write sides it starts.
    wanted = n if "write_endpoint" in binds else 1
    for name in ("events_endpoint", "catchup_endpoint"):
        given = endpoint_list(getattr(cfg, name))
        if given and len(given) != wanted:
            s = _ALL[name]
            why = (f"one per write side (--write-sides {n})" if "write_endpoint" in binds
                   else "a write side binds one")
            return f"{s.flag} ({s.var}) names {len(given)} endpoints, not {wanted}: {why}"
    return ""


def exposed_bind(cfg: Config, binds: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Why this process must not bind the endpoints named in `binds` (Config fields), or ''
    when it may: without CURVE (curve_settings().server_key) every peer that can reach an
    endpoint is trusted, so one reachable from other hosts needs --insecure."""
    if cfg.insecure or curve_settings(env).server_key:
        return ""
    for name in binds:
        if name == "http_host":
            continue  # not a ZeroMQ endpoint, so CURVE cannot cover it: see exposed_http
        for endpoint in endpoint_list(getattr(cfg, name)):
            if stays_on_host(endpoint):
                continue
            s = _ALL[name]
            return (f"{endpoint} ({s.flag}, {s.var}) can be reached from other hosts, and "
                    f"CURVE is off ({_ALL['curve_server_key'].var} is not set): anyone who can "
                    "reach it could send commands and read every event and reply. Bind a "
                    "loopback address, turn CURVE on, or pass --insecure "
                    f"({_ALL['insecure'].var}=1) if the network itself is trusted")
    return ""


def exposed_http(cfg: Config, binds: Sequence[str]) -> str:
    """Why this process must not bind the monitor's HTTP server (when `binds` names
    http_host and a port is set), or '' when it may. The page and /metrics show every event
    to whoever reaches them, with no authentication and no encryption; CURVE keys protect
    ZeroMQ sockets only, so a non-loopback address needs --insecure even with CURVE on."""
    if "http_host" not in binds or not cfg.http_port or cfg.insecure:
        return ""
    host = cfg.http_host
    # Checked as the TCP endpoint it is, by the rule every other bound endpoint follows.
    if stays_on_host(f"tcp://[{host}]:0" if ":" in host else f"tcp://{host}:0"):
        return ""
    s = _ALL["http_host"]
    return (f"{host} ({s.flag}, {s.var}) can be reached from other hosts: the monitor's page "
            "and /metrics would show every event to anyone who reaches them, with no "
            "authentication (CURVE does not cover HTTP). Bind a loopback address, or pass "
            f"--insecure ({_ALL['insecure'].var}=1) if the network itself is trusted")


# ---- test-only faults ------------------------------------------------------------------------

CRASH_ROLES = ("router", "write", "read")


class CrashOnPurpose(RuntimeError):
    """Raised by a process the fault_crash_at_start switch names."""


def crash_roles(env: Mapping[str, str] | None = None) -> set[str]:
    """The process types fault_crash_at_start names; ValueError for an unknown one."""
    s = _ALL["fault_crash_at_start"]
    roles = {r.strip() for r in s.value(env).split(",") if r.strip()}
    unknown = sorted(roles - set(CRASH_ROLES))
    if unknown:
        raise ValueError(f"{s.var} names {', '.join(unknown)}; known: {', '.join(CRASH_ROLES)}")
    return roles


def crash_if_asked(role: str, env: Mapping[str, str] | None = None) -> None:
    """Raise CrashOnPurpose when the test-only switch names this process type."""
    if role in crash_roles(env):
        raise CrashOnPurpose(f"{_ALL['fault_crash_at_start'].var} names {role}: crashing "
                             "at start on purpose")


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")


_HELP_WIDTH = 79


def _epilog() -> str:
    """The settings with no flag, one per row (the help keeps these lines as they are)."""
    lines = []
    for title, settings in (("environment only (no flag):", ENVIRONMENT),
                            ("test-only fault switches (never set them in production):",
                             TEST_SWITCHES)):
        lines += [title] if not lines else ["", title]
        for s in settings:
            lines.append(textwrap.fill(f"{s.text} [default: {s.describe_default()}]",
                                       _HELP_WIDTH, initial_indent=f"  {s.var}: ",
                                       subsequent_indent=" " * 6))
    lines += ["", EXAMPLES_TITLE, *EXAMPLE_LINES]
    return "\n".join(lines)


# One request line a dialect and the reply line a node with the sample data writes for it:
# the last lines of every --help and, the same, in the README (tests/e2e/test_newcomer.py
# checks both against a real node).
EXAMPLES = (
    ('{"type": "GetUser", "msg_id": 1, "params": {"user_id": "user-123"}}',
     '{"type": "query_result", "in_reply_to": 1, "data": {"id": "user-123", "name": "John Doe"}}'),
    ('{"type": "query", "msg_id": 2, "query": {"type": "GetUser", "params": {"userId": '
     '"user-123"}}}',
     '{"type": "query_result", "in_reply_to": 2, "data": {"id": "user-123", "name": "John"}}'),
)
EXAMPLES_TITLE = "one request line a dialect (bus, then envelope; docs/protocol.md) and its reply:"
EXAMPLE_LINES = [text for request, reply in EXAMPLES for text in (f"  {request}", f"  -> {reply}")]


def parser(description: str, env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if env is None else env
    # Raw, so that the epilog keeps its rows: the description is wrapped here instead.
    description = "\n\n".join(textwrap.fill(p, _HELP_WIDTH) for p in description.split("\n\n"))
    ap = argparse.ArgumentParser(description=description, epilog=_epilog(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for s in FLAGS:
        raw = env.get(s.var, "")
        if isinstance(s.default, bool):
            ap.add_argument(s.flag, action="store_true", default=_truthy(raw),
                            help=f"{s.text} [env {s.var}=1; default: {s.describe_default()}]")
        else:
            # A string default goes through `type` like a typed value, so a variable that
            # does not convert is a usage error (exit 2) unless the flag overrides it.
            ap.add_argument(s.flag, type=type(s.default), default=raw or s.default,
                            metavar=s.metavar,
                            help=f"{s.text} [env {s.var}; default: {s.describe_default()}]")
    return ap


def parse(argv: Sequence[str] | None = None, description: str = "",
          env: Mapping[str, str] | None = None, binds: Sequence[str] = ()) -> Config:
    """The Config of a process; a bad setting is a usage error (message on stderr, exit 2).

    binds: the endpoints this process binds (BOUND_BY): one reachable from other hosts
    without CURVE is refused here, before the process starts anything (see exposed_bind)."""
    env = os.environ if env is None else env
    ap = parser(description, env)
    ns = ap.parse_args(argv)
    if ns.sync not in SYNC_MODES:
        ap.error(f"--sync must be 'full' or 'normal', not {ns.sync!r}")
    if ns.store:
        try:
            store_url.parse(ns.store)
        except ValueError as exc:
            ap.error(f"--store: {exc}")
    # The environment-only settings are checked here too, so that a bad one stops the
    # launcher at once instead of making its children fail over and over.
    try:
        for s in ENVIRONMENT + TEST_SWITCHES:
            s.value(env)
        crash_roles(env)
    except ValueError as exc:
        ap.error(str(exc))
    flagged = {s.name: getattr(ns, s.name) for s in FLAGS}
    for s in FLAGS + ENVIRONMENT + TEST_SWITCHES:
        bad = out_of_range(s.name, flagged[s.name] if s in FLAGS else s.value(env))
        if bad:
            ap.error(bad)
    cfg = Config(**flagged, fault_max_pages=value("fault_max_pages", env))
    problem = (_write_side_problem(cfg, binds) or exposed_bind(cfg, binds, env)
               or exposed_http(cfg, binds))
    if problem:
        ap.error(problem)
    return cfg


# A child exiting with this status (EX_CONFIG) cannot work with the settings or storage it
# was given (corrupt store, folder locked by another node): restarting it will not help.
FATAL_EXIT = 78
