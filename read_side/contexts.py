"""Loads the read-side plug-in of every registered context."""
from __future__ import annotations

import importlib

from common.contexts import CONTEXTS


def load_all() -> dict:
    """context name -> a fresh Projection of that context."""
    return {spec.name: importlib.import_module(f"read_side.{spec.name}").Projection()
            for spec in CONTEXTS}
