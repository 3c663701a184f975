"""Loads the read-side plug-in of every registered context."""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from common.contexts import CONTEXTS, ContextSpec, check_handlers


def load_all(contexts: Iterable[ContextSpec] = CONTEXTS) -> dict[str, Any]:
    """context name -> a fresh Projection of that context.

    Refuses (common.contexts.RegistryError) a Projection whose `queries` do not
    answer exactly the queries registered for its context in common/contexts.py.
    """
    projections = {}
    for spec in contexts:
        module = importlib.import_module(f"read_side.{spec.name}")
        projection = module.Projection()
        check_handlers(spec, "query", projection.queries,
                       f"{module.__name__}.Projection().queries")
        projections[spec.name] = projection
    return projections
