"""Unit tests start no process: each one that tries fails, so a slow test cannot slip into
the fast folder unnoticed (it belongs in tests/e2e)."""
from __future__ import annotations

import os
import subprocess
from typing import Iterator

import pytest

# Every way the standard library starts a program or a copy of this one (subprocess, os.spawn*
# and multiprocessing's fork start method all come down to these).
OS_STARTERS = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system")


@pytest.fixture(autouse=True)
def no_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse to start a process; yields the attempts, which must be none at teardown (code
    under test might catch the refusal and carry on)."""
    attempts: list[str] = []

    def refusing(name: str):
        def refuse(*args: object, **kwargs: object) -> None:
            attempts.append(name)
            raise AssertionError(f"a unit test started a process ({name}): move it to tests/e2e")
        return refuse

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refusing("subprocess"))
    for name in OS_STARTERS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refusing(f"os.{name}"))
    yield attempts
    assert not attempts, f"a unit test started processes: {attempts}"
