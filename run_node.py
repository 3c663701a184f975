#!/usr/bin/env python3
"""The node's launcher: makes a private runtime folder, starts the write side and the
read side(s) as their own processes, runs the router on stdin/stdout, and supervises.

    python run_node.py [--envelope] [--data-dir DIR] ...   (see --help)

Stdout carries nothing but replies; logs go to stderr.
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))


def _ensure_dependencies() -> None:
    """Re-run under the project's .venv when this interpreter lacks pyzmq or msgpack."""
    from common import dependencies  # pure stdlib, so importable before the check

    dependencies.ensure("run_node.py", [os.path.abspath(__file__), *sys.argv[1:]],
                        hold_stops=True)


def main(argv: list[str] | None = None) -> int:
    """argv None: the process's own command line (run_node.py, the cqrs-node script).
    Given explicitly (a test, an embedding program), the caller's signal handling is
    left alone."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if argv is None:
        from common import stopping

        # First of all: until now SIGTERM kills the process outright (exit status -15,
        # children and runtime folder left to the lifeline). From here it is a request
        # that the launcher honours at whatever step of its start it has reached.
        stopping.catch_early()
    _ensure_dependencies()
    from router.launcher import launch

    return launch(argv)


if __name__ == "__main__":
    sys.exit(main())
