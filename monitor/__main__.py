"""python -m monitor: the monitor on its own (service mode), or as run_node.py's child.

On its own it takes the service-mode defaults (CQRS_* endpoints on loopback, HTTP port
5555); run_node.py --http-port P passes it every endpoint of its node.
"""
import sys

from common.lifeline import die_with_parent

if __name__ == "__main__":
    die_with_parent()  # first: the launcher may die while the imports below run
    from common import config, runtime

    runtime.keep_files_private()
    cfg = config.parse(description="CQRS node monitor: /metrics and a live page over HTTP",
                       binds=config.BOUND_BY["monitor"])
    if not cfg.runtime_dir:  # on its own (service mode), not under run_node.py
        config.with_service_defaults(cfg)
        # The default port is only known now, so its address is checked again.
        exposed = config.exposed_http(cfg, config.BOUND_BY["monitor"])
        if exposed:
            sys.stderr.write(f"monitor: {exposed}\n")
            raise SystemExit(2)
    try:
        import prometheus_client  # noqa: F401  (checked here, to say so in words)
    except ImportError:
        sys.stderr.write("monitor: prometheus-client is not installed: run `make install` "
                         "(or pip install .) in the project folder\n")
        raise SystemExit(config.FATAL_EXIT)  # restarting will not install it
    from monitor.loop import main

    main(cfg)
