"""python -m read_side: run one read side (see --help for its endpoints)."""
from common import config
from common.lifeline import die_with_parent
from read_side.service import main

if __name__ == "__main__":
    die_with_parent()
    main(config.parse(description="CQRS node read side"))
