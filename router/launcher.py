"""Wires one node together on this host: runtime folder, endpoints, children, router."""
from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import replace


# Only light modules here: the children are started before this process loads pyzmq
# (see launch), so that their start-up overlaps with its own.
from common import config, runtime, stopping, store_url
from common.log import setup
from common.tuning import collect_garbage_rarely
from router.supervisor import Supervisor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESCRIPTION = ("CQRS/event-sourcing node: JSON lines on stdin, one reply line each on stdout. "
               "Every flag also has a CQRS_* environment variable.")


def _fill_endpoints(cfg: config.Config, runtime: str) -> list[tuple[str, str]]:
    """Endpoints not given become ipc sockets in the private runtime folder, except that a
    TCP events endpoint on port P gets its catch-up socket on P + 1 (what cqrs-tap expects).

    Each write side binds an events and a catch-up endpoint of its own: returned as one
    pair per write side, and left in cfg as comma-separated lists (config.endpoint_list)
    for the processes that follow every write side's stream. One write side has
    events.sock and catchup.sock, as before there could be more; write side i of several
    has events-i.sock and catchup-i.sock."""
    n = cfg.write_sides
    names = [""] if n == 1 else [f"-{i + 1}" for i in range(n)]
    # config.parse has checked that a list given has one endpoint per write side.
    events = (config.endpoint_list(cfg.events_endpoint)
              or [f"ipc://{os.path.join(runtime, f'events{name}.sock')}" for name in names])
    catchups = config.endpoint_list(cfg.catchup_endpoint) or [
        _catchup_beside(endpoint, runtime, name) for endpoint, name in zip(events, names)]
    cfg.events_endpoint, cfg.catchup_endpoint = ",".join(events), ",".join(catchups)
    for name in ("write", "read"):
        attr = f"{name}_endpoint"
        if not getattr(cfg, attr):
            setattr(cfg, attr, f"ipc://{os.path.join(runtime, name + '.sock')}")
    return list(zip(events, catchups))


def _catchup_beside(events: str, runtime: str, name: str) -> str:
    """The catch-up endpoint of a write side whose events endpoint is `events`."""
    host, _, port = events.rpartition(":")
    if events.startswith("tcp://") and port.isdigit():
        return f"{host}:{int(port) + 1}"
    return f"ipc://{os.path.join(runtime, f'catchup{name}.sock')}"


def launch(argv: list[str] | None = None) -> int:
    """Run the node; its exit status. A stop (SIGTERM/SIGINT) is honoured at any step: what
    was read is answered, the children started so far are stopped, the runtime folder is
    removed, and the status is 0 (1 only when the node could not run: see Supervisor.fatal)."""
    # With --http-port it also binds the monitor's HTTP server, through the monitor.
    cfg = config.parse(argv, description=DESCRIPTION,
                       binds=config.BOUND_BY["launcher"] + config.BOUND_BY["monitor"])
    runtime.keep_files_private()
    log = setup("node")
    if stopping.requested():
        log.info("asked to stop before starting; starting nothing")
        return 0
    collect_garbage_rarely()
    if cfg.data_dir:
        # A folder that cannot be made or written is not refused here: the write side finds
        # it cannot take its lock there and says so as a fatal error, and the router then
        # answers every request it read with error 11 naming the reason, and exits 1 (the
        # same path as a corrupt store).
        cfg.data_dir = os.path.abspath(cfg.data_dir)
        problem = _unusable_folder(cfg.data_dir)
        if problem:
            log.error("data folder %s %s", cfg.data_dir, problem)
    cfg.store = _absolute_store(cfg.store)
    own_runtime = not cfg.runtime_dir
    runtime_dir = runtime.make() if own_runtime else cfg.runtime_dir
    # From here on everything made is undone in the `finally`s, whatever step a stop or
    # an error interrupts: the children started, then the runtime folder.
    try:
        os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
        cfg.runtime_dir = os.path.abspath(runtime_dir)
        if "," in cfg.runtime_dir:
            # Its ipc endpoints are handed on in comma-separated lists.
            log.error("cannot start: the runtime folder %s has a comma in its name",
                      cfg.runtime_dir)
            return 1
        pairs = _fill_endpoints(cfg, cfg.runtime_dir)
        sys.stderr.write(f"events endpoint: {cfg.events_endpoint}\n")
        sys.stderr.flush()

        # Children first: each needs about a tenth of a second to load its modules, and
        # they connect to the router's sockets whenever those are bound (ZeroMQ retries).
        supervisor = Supervisor(cwd=ROOT, runtime_dir=cfg.runtime_dir)
        try:
            child_args = cfg.to_argv()
            # Each write side gets its own pair of endpoints; the read sides get the lists.
            children = [(f"write side {i + 1}" if len(pairs) > 1 else "write side", "write_side",
                         replace(cfg, events_endpoint=events, catchup_endpoint=catchup).to_argv())
                        for i, (events, catchup) in enumerate(pairs)]
            children += [(f"read side {i + 1}", "read_side", child_args)
                         for i in range(max(1, cfg.read_replicas))]
            for name, module, args in children:
                if stopping.requested():
                    break
                supervisor.start(name, module, args)
            if cfg.http_port and not stopping.requested():
                # Optional: a monitor that cannot run or keeps crashing never stops the node.
                # It asks the router for stats on a client endpoint of its own, private to
                # this runtime folder (stdin is the grader's).
                supervisor.start("monitor", "monitor",
                                 replace(cfg, client_endpoint=_monitor_endpoint(cfg)).to_argv(),
                                 optional=True)
            if stopping.requested():
                log.info("asked to stop while starting; stopping what was started")
                return 0
            return _serve(cfg, supervisor, log)
        finally:
            supervisor.stop()
    finally:
        if own_runtime:
            shutil.rmtree(runtime_dir, ignore_errors=True)


def _serve(cfg: config.Config, supervisor: Supervisor, log: logging.Logger) -> int:
    """Run the router on stdin/stdout until end of input or a signal."""
    from common import wire
    from router.loop import Router
    from router.ports import StdinPort

    ctx = wire.context()
    stdin = StdinPort(0, 1, cfg.max_line, cfg.envelope)
    drops = wire.Drops(logging.getLogger("router"))
    clients = None
    if cfg.http_port:  # the monitor asks for stats here
        from router.ports import ClientPort

        clients = ClientPort(ctx, _monitor_endpoint(cfg), cfg.max_line, cfg.envelope, drops)
    router = Router(cfg, ctx, stdin=stdin, clients=clients, drops=drops)
    router.extra_stats = lambda: {"restarts": {c.name: c.restarts for c in supervisor.children}}
    aborted = False

    def tick() -> list[int]:
        nonlocal aborted
        exited = supervisor.tick()
        # Also while draining after a signal: what waits on a child that will not come back
        # is answered now, with the reason, rather than at its deadline.
        if supervisor.fatal and not aborted:
            aborted = True
            router.abort(supervisor.fatal)
        return exited

    router.on_tick = tick

    def drain(signum: int) -> None:
        log.info("signal %d: answering what was read, then stopping", signum)
        router.draining = True

    # Takes over from stopping.catch_early: a signal that came during start-up drains at once.
    router.wake_fd = stopping.StopSignal(on_stop=drain).fd
    try:
        router.run()
    except BrokenPipeError:
        log.warning("stdout closed; stopping")
    finally:
        supervisor.stop()
        router.close()
        ctx.term()
    return 1 if supervisor.fatal else 0


def _monitor_endpoint(cfg: config.Config) -> str:
    """The client endpoint the router binds for the monitor, in the private runtime folder."""
    return f"ipc://{os.path.join(cfg.runtime_dir, 'clients.sock')}"


def _absolute_store(store: str) -> str:
    """The store URL with a relative SQLite path made absolute: the children run in the
    project folder, not where run_node.py was started (as for --data-dir)."""
    if not store:
        return store
    url = store_url.parse(store)  # config.parse has checked it
    if url.scheme != "sqlite" or url.path == store_url.MEMORY or os.path.isabs(url.path):
        return store
    return str(store_url.sqlite_file(os.path.abspath(url.path)))


def _unusable_folder(folder: str) -> str:
    """Why `folder` cannot hold the store, or '' when it can. A missing folder (and any
    missing parent) is made 0700: the store holds users' data. An existing one keeps its
    mode: it is the operator's."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        return f"cannot be created: {exc.strerror}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable"
    return ""
