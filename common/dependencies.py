"""Re-run a program under the project's .venv when this interpreter lacks pyzmq or msgpack.

A newcomer types `python3 run_node.py` or `python3 -m common.tap` with whatever python is
first on the PATH; the packages live in the project's .venv (`make install`). Rather than
fail with an ImportError, such a program replaces itself (exec, same pid, same stdin and
stdout) with the .venv's interpreter running the same command line.

Pure standard library, and so are the two modules it uses (config, stopping): it runs
before anything has checked that pyzmq is there.
"""
from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from typing import Sequence

from common import config, stopping

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
NEEDED = ("zmq", "msgpack")


def missing() -> list[str]:
    """The needed packages this interpreter cannot import (looked up, not imported: loading
    pyzmq takes a while, and the launcher starts its children first)."""
    return [name for name in NEEDED if find_spec(name) is None]


def ensure(program: str, rerun: Sequence[str], hold_stops: bool = False,
           venv_python: str = VENV_PYTHON) -> None:
    """Return when the packages are importable; else exec `venv_python *rerun` (the same
    command line under the .venv), or say what to do on stderr and exit 1.

    program: the name the message starts with. rerun: the interpreter's arguments that
    start this program again, e.g. [path of run_node.py, *flags] or ["-m", "common.tap",
    *flags]. hold_stops: the program calls stopping.catch_early first thing, so a SIGTERM
    or SIGINT that comes while the next interpreter starts is held pending until that
    image catches it (handlers do not survive exec; the signal mask does)."""
    if not missing():
        return
    # Once only: a .venv without the packages must not make this loop forever.
    if os.path.exists(venv_python) and not config.value("reexec"):
        if hold_stops:
            stopping.block_across_exec()
            if stopping.requested():  # a stop that came already ends the program here
                raise SystemExit(0)
        config.put(os.environ, "reexec", True)
        try:
            os.execv(venv_python, [venv_python, *rerun])
        except OSError:
            if hold_stops:
                stopping.unblock()
    sys.stderr.write(f"{program}: pyzmq and msgpack are needed: run `make install` in "
                     f"{ROOT} (or pip install .)\n")
    raise SystemExit(1)
