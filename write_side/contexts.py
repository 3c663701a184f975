"""Loads the write-side plug-in of every registered context."""
from __future__ import annotations

import importlib
from types import ModuleType

from common.contexts import CONTEXTS


def load_all() -> dict[str, ModuleType]:
    """context name -> module with AGGREGATE, COMMANDS and SAMPLE."""
    return {spec.name: importlib.import_module(f"write_side.{spec.name}") for spec in CONTEXTS}
