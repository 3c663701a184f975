"""Service mode by hand: the processes of a node (router, write side, read replicas) started
on their own, talking over loopback TCP endpoints of the test's own."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Iterable

from tests.support.nodeproc import VENV_BIN, descendants, kill_leftovers
from tests.support.ports import free_ports

ROLES = ("CLIENT", "WRITE", "READ", "EVENTS", "CATCHUP")  # one CQRS_<ROLE>_ENDPOINT each


def role_endpoints() -> dict[str, str]:
    """A free loopback TCP endpoint for each role."""
    return {role: f"tcp://127.0.0.1:{port}" for role, port in zip(ROLES, free_ports(len(ROLES)))}


def service_env(endpoints: dict[str, str], data_dir: Path) -> dict[str, str]:
    """The environment of every process of the node: these endpoints and data folder, the
    virtualenv's scripts first on PATH, and no CQRS_ setting inherited from the shell that
    runs the tests (one would change what the test starts)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
    return {**base, "PATH": VENV_BIN + os.pathsep + base.get("PATH", ""),
            "CQRS_DATA_DIR": str(data_dir),
            **{f"CQRS_{role}_ENDPOINT": ep for role, ep in endpoints.items()}}


def start_module(module: str, env: dict[str, str], cwd: Path, err_path: Path) -> subprocess.Popen:
    """`python -m <module>` with the virtualenv's python; stdout discarded, stderr to a file
    the test can show when something goes wrong."""
    with open(err_path, "wb") as err:
        return subprocess.Popen([os.path.join(VENV_BIN, "python"), "-m", module], env=env,
                                cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)


def stop_processes(procs: Iterable[subprocess.Popen], seen: set[int]) -> list[int]:
    """SIGTERM every process (SIGCONT first: a test may have stopped one), wait, kill what
    does not end; return the processes of `seen` and below them still alive after a grace
    (killed, but reported so the test can say so)."""
    procs = list(procs)
    for proc in procs:
        seen |= descendants(proc.pid) | {proc.pid}
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return kill_leftovers(seen, 5)
