"""Every test is either a unit test (tests/unit: pure parts, no process started, seconds for
the folder) or an end-to-end one (tests/e2e: real processes); its folder gives its marker, so
`pytest -m unit` and `pytest -m e2e` pick one speed."""
from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SPEEDS = ("unit", "e2e")  # the folders, and the markers (registered in pyproject.toml)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path).resolve()
        if not path.is_relative_to(TESTS):
            continue  # collected from elsewhere on the command line: not ours to sort
        folder = path.relative_to(TESTS).parts[0]
        if folder not in SPEEDS:
            # A test outside both folders would run with neither -m unit nor -m e2e.
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in tests/unit or tests/e2e")
        item.add_marker(folder)
