"""Loads the write-side plug-in of every registered context."""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType

from common.contexts import CONTEXTS, ContextSpec, check_handlers


def load_all(contexts: Iterable[ContextSpec] = CONTEXTS) -> dict[str, ModuleType]:
    """context name -> module with AGGREGATE, COMMANDS and SAMPLE.

    Refuses (common.contexts.RegistryError) a module whose COMMANDS do not answer
    exactly the commands registered for its context in common/contexts.py.
    """
    modules = {}
    for spec in contexts:
        module = importlib.import_module(f"write_side.{spec.name}")
        check_handlers(spec, "command", module.COMMANDS, f"{module.__name__}.COMMANDS")
        modules[spec.name] = module
    return modules
