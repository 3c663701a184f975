"""The unit folder's guard (tests/unit/conftest.py) really refuses to start processes."""
from __future__ import annotations

import os
import subprocess

import pytest


def test_starting_a_program_or_a_fork_is_refused_and_recorded(no_process: list[str]) -> None:
    with pytest.raises(AssertionError, match="move it to tests/e2e"):
        subprocess.run(["true"])
    with pytest.raises(AssertionError, match="move it to tests/e2e"):
        os.fork()
    assert no_process == ["subprocess", "os.fork"]
    no_process.clear()  # seen: the guard's own teardown check must not fail this test
