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
    from importlib.util import find_spec

    # Looked up, not imported: loading pyzmq waits until the children are started.
    if find_spec("zmq") is None or find_spec("msgpack") is None:
        venv_python = os.path.join(ROOT, ".venv", "bin", "python")
        if os.path.exists(venv_python) and not os.environ.get("CQRS_REEXEC"):
            os.environ["CQRS_REEXEC"] = "1"
            os.execv(venv_python, [venv_python, os.path.abspath(__file__), *sys.argv[1:]])
        sys.stderr.write("run_node.py: pyzmq and msgpack are needed: run `make install` "
                         "(or pip install .)\n")
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    _ensure_dependencies()
    from router.launcher import launch

    return launch(argv)


if __name__ == "__main__":
    sys.exit(main())
