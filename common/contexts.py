"""The registry of bounded contexts: the one place a new context is registered.

Each context names the dialect it is served in and the command and query
names it answers. The router routes by these names alone; the write side
loads `write_side.<name>` and the read side `read_side.<name>` for the logic.
A name must be unique among the contexts of one dialect.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ContextSpec:
    name: str
    dialect: str  # "bus" or "envelope"
    commands: tuple[str, ...]
    queries: tuple[str, ...]


CONTEXTS: tuple[ContextSpec, ...] = (
    ContextSpec(
        name="directory",
        dialect="bus",
        commands=("CreateUser", "RenameUser", "ChangeEmail", "DeactivateUser"),
        queries=("GetUser", "ListUsers", "FindUserByEmail"),
    ),
    ContextSpec(
        name="accounts",
        dialect="envelope",
        commands=("CreateUser", "RenameUser", "DeleteUser"),
        queries=("GetUser", "GetUserAtTime", "GetUserHistory", "ListUsers"),
    ),
)


def routes(dialect: str, kind: str) -> dict[str, str]:
    """Map each command (kind="commands") or query name of a dialect to its context."""
    table: dict[str, str] = {}
    for spec in CONTEXTS:
        if spec.dialect == dialect:
            for name in getattr(spec, kind):
                table.setdefault(name, spec.name)
    return table
