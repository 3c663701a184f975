"""python -m write_side: run one write side (see --help for its endpoints)."""
from common import config
from common.lifeline import die_with_parent
from write_side.service import main

if __name__ == "__main__":
    die_with_parent()
    main(config.parse(description="CQRS node write side"))
