"""Wires one node together on this host: runtime folder, endpoints, children, router."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import zmq

from common import config
from common.log import setup
from common.stopping import StopSignal
from router.core import Router
from router.supervisor import Supervisor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESCRIPTION = ("CQRS/event-sourcing node: JSON lines on stdin, one reply line each on stdout. "
               "Every flag also has a CQRS_* environment variable.")


def _fill_endpoints(cfg: config.Config, runtime: str) -> None:
    """Endpoints not given become ipc sockets in the private runtime folder."""
    for name in ("events", "catchup", "write", "read"):
        attr = f"{name}_endpoint"
        if not getattr(cfg, attr):
            setattr(cfg, attr, f"ipc://{os.path.join(runtime, name + '.sock')}")


def launch(argv: list[str] | None = None) -> int:
    cfg = config.parse(argv, description=DESCRIPTION)
    log = setup("node")
    own_runtime = not cfg.runtime_dir
    runtime = cfg.runtime_dir or tempfile.mkdtemp(prefix="cqrs-node-")  # mode 0700
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    cfg.runtime_dir = os.path.abspath(runtime)
    if cfg.data_dir:
        cfg.data_dir = os.path.abspath(cfg.data_dir)
        os.makedirs(cfg.data_dir, exist_ok=True)
    _fill_endpoints(cfg, cfg.runtime_dir)
    sys.stderr.write(f"events endpoint: {cfg.events_endpoint}\n")
    sys.stderr.flush()

    ctx = zmq.Context()
    router = Router(cfg, ctx)  # binds first: the back-ends connect to it
    supervisor = Supervisor(cwd=ROOT)
    child_args = cfg.to_argv()
    supervisor.start("write side", "write_side", child_args)
    for i in range(max(1, cfg.read_replicas)):
        supervisor.start(f"read side {i + 1}", "read_side", child_args)
    router.on_tick = supervisor.tick

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
    return 0
