"""python -m read_side: run one read side (see --help for its endpoints)."""
from common.lifeline import die_with_parent

if __name__ == "__main__":
    die_with_parent()  # first: the launcher may die while the imports below run
    from common import config, runtime

    runtime.keep_files_private()  # before any snapshot is written
    from read_side.loop import main

    cfg = config.parse(description="CQRS node read side", binds=config.BOUND_BY["read"])
    config.crash_if_asked("read")  # test-only fault switch
    if not cfg.runtime_dir:  # on its own (service mode), not under run_node.py
        config.with_service_defaults(cfg)
    main(cfg)
