"""Service mode: the router alone, serving clients on a ZeroMQ ROUTER socket until a signal."""
from __future__ import annotations

from typing import Sequence

from common import config, wire
from common.log import setup
from common.security import Curve
from common.stopping import StopSignal
from common.tuning import collect_garbage_rarely
from router.loop import Router
from router.ports import ClientPort


def main(argv: Sequence[str] | None = None) -> int:
    cfg = config.with_service_defaults(config.parse(argv, description=__doc__,
                                                    binds=config.BOUND_BY["router"]))
    config.crash_if_asked("router")  # test-only fault switch
    log = setup("router")
    collect_garbage_rarely()
    ctx = wire.context()
    secure = Curve(ctx)
    drops = wire.Drops(log)
    clients = ClientPort(ctx, cfg.client_endpoint, cfg.max_line, cfg.envelope, drops, secure)
    router = Router(cfg, ctx, clients=clients, secure=secure, drops=drops)

    def drain(signum: int) -> None:
        log.info("signal %d: answering what was read, then stopping", signum)
        router.draining = True

    router.wake_fd = StopSignal(on_stop=drain).fd
    log.info("serving clients on %s (write sides: %s, read sides: %s)", cfg.client_endpoint,
             cfg.write_endpoint, cfg.read_endpoint)
    try:
        router.run()
    finally:
        router.close()
        secure.close()
        ctx.term()
    return 0
