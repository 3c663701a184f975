"""Wires one node together on this host: runtime folder, endpoints, children, router."""
from __future__ import annotations

import os
import shutil
import sys


# Only light modules here: the children are started before this process loads pyzmq
# (see launch), so that their start-up overlaps with its own.
from common import config, runtime
from common.log import setup
from common.tuning import collect_garbage_rarely
from router.supervisor import Supervisor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESCRIPTION = ("CQRS/event-sourcing node: JSON lines on stdin, one reply line each on stdout. "
               "Every flag also has a CQRS_* environment variable.")


def _fill_endpoints(cfg: config.Config, runtime: str) -> None:
    """Endpoints not given become ipc sockets in the private runtime folder, except that a
    TCP events endpoint on port P gets its catch-up socket on P + 1 (what cqrs-tap expects)."""
    host, _, port = cfg.events_endpoint.rpartition(":")
    if cfg.events_endpoint.startswith("tcp://") and port.isdigit() and not cfg.catchup_endpoint:
        cfg.catchup_endpoint = f"{host}:{int(port) + 1}"
    for name in ("events", "catchup", "write", "read"):
        attr = f"{name}_endpoint"
        if not getattr(cfg, attr):
            setattr(cfg, attr, f"ipc://{os.path.join(runtime, name + '.sock')}")


def launch(argv: list[str] | None = None) -> int:
    cfg = config.parse(argv, description=DESCRIPTION)
    log = setup("node")
    collect_garbage_rarely()
    if cfg.data_dir:
        cfg.data_dir = os.path.abspath(cfg.data_dir)
        problem = _unusable_folder(cfg.data_dir)
        if problem:
            log.error("cannot start: data folder %s %s", cfg.data_dir, problem)
            return 1
    own_runtime = not cfg.runtime_dir
    runtime_dir = runtime.make() if own_runtime else cfg.runtime_dir
    os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
    cfg.runtime_dir = os.path.abspath(runtime_dir)
    _fill_endpoints(cfg, cfg.runtime_dir)
    sys.stderr.write(f"events endpoint: {cfg.events_endpoint}\n")
    sys.stderr.flush()

    # Children first: each needs about a tenth of a second to load its modules, and
    # they connect to the router's sockets whenever those are bound (ZeroMQ retries).
    supervisor = Supervisor(cwd=ROOT, runtime_dir=cfg.runtime_dir)
    child_args = cfg.to_argv()
    supervisor.start("write side", "write_side", child_args)
    for i in range(max(1, cfg.read_replicas)):
        supervisor.start(f"read side {i + 1}", "read_side", child_args)
    try:
        return _serve(cfg, supervisor, own_runtime, log)
    finally:
        supervisor.stop()


def _serve(cfg: config.Config, supervisor: Supervisor, own_runtime: bool, log) -> int:
    """Run the router on stdin/stdout until end of input or a signal."""
    from common import wire
    from common.stopping import StopSignal
    from router.loop import Router
    from router.ports import StdinPort

    ctx = wire.context()
    stdin = StdinPort(0, 1, cfg.max_line, cfg.envelope)
    router = Router(cfg, ctx, stdin=stdin)

    def tick() -> list[int]:
        exited = supervisor.tick()
        if supervisor.fatal and not router.draining:
            router.abort(supervisor.fatal)
        return exited

    router.on_tick = tick

    def drain(signum: int) -> None:
        log.info("signal %d: answering what was read, then stopping", signum)
        router.draining = True

    router.wake_fd = StopSignal(on_stop=drain).fd
    try:
        router.run()
    except BrokenPipeError:
        log.warning("stdout closed; stopping")
    finally:
        supervisor.stop()
        router.close()
        ctx.term()
        if own_runtime:
            shutil.rmtree(cfg.runtime_dir, ignore_errors=True)
    return 1 if supervisor.fatal else 0


def _unusable_folder(folder: str) -> str:
    """Why `folder` cannot hold the store, or '' when it can."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        return f"cannot be created: {exc.strerror}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable"
    return ""
