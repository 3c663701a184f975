"""The registry of bounded contexts: the one place a context's names are declared.

Why here: the router must route a request, and answer "unknown type" (error 10),
without the sides' code (router/, write_side/ and read_side/ never import each
other). So each context declares here, once, the dialect it is served in and
the command and query names it answers; the router routes by these names alone.

The sides hold the logic: the write side loads `write_side.<name>` (its
`COMMANDS` table) and the read side `read_side.<name>` (its `Projection().queries`
table). Both refuse to start unless a table answers exactly the names declared
here, so the declaration and the code cannot drift apart.

Adding a context:
  1. one entry in CONTEXTS, at the end of this file:
     ContextSpec(name, dialect, commands=(...), queries=(...));
  2. write_side/<name>.py with AGGREGATE, COMMANDS (name -> handler) and SAMPLE;
  3. read_side/<name>.py with a Projection whose `queries` maps name -> handler.

Within one dialect a command name belongs to one context only, and so does a
query name; otherwise a request could not tell which context it is for. A bus
request's type is the bare name, so there a name cannot be both a command and
a query either. The dialects are routed apart, so bus and envelope may both
have a `CreateUser`. `register` refuses an ambiguous registry at import, so the
router and both sides refuse to start with it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DIALECTS = ("bus", "envelope")
KINDS = ("command", "query")


class RegistryError(ValueError):
    """The registry, or a side's handler table, is inconsistent; raised at start."""


@dataclass(frozen=True)
class ContextSpec:
    name: str
    dialect: str  # one of DIALECTS
    commands: tuple[str, ...] = ()
    queries: tuple[str, ...] = ()

    def names(self, kind: str) -> tuple[str, ...]:
        """The declared names of one kind: "command" or "query"."""
        if kind == "command":
            return self.commands
        if kind == "query":
            return self.queries
        raise RegistryError(f"unknown request kind {kind!r}: expected one of {KINDS}")


def register(*specs: ContextSpec) -> tuple[ContextSpec, ...]:
    """The registry of these contexts, refused (RegistryError) if it is ambiguous."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise RegistryError(f"context {spec.name!r} is registered twice")
        seen.add(spec.name)
        if spec.dialect not in DIALECTS:
            raise RegistryError(f"context {spec.name!r}: unknown dialect {spec.dialect!r}, "
                                f"expected one of {DIALECTS}")
        for kind in KINDS:
            names = spec.names(kind)
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise RegistryError(f"context {spec.name!r} declares the {kind} "
                                    f"{', '.join(twice)} twice")
    for dialect in DIALECTS:
        for kind in KINDS:
            routes(dialect, kind, specs)  # raises on a name two contexts answer
    _check_bus_kinds_apart(specs)
    return specs


def _check_bus_kinds_apart(specs: Iterable[ContextSpec]) -> None:
    """Refuse a name that is both a bus command and a bus query: a bus request's type is
    the bare name, so the two could not be told apart (the router would pick the command)."""
    commands = routes("bus", "command", specs)
    for name, context in routes("bus", "query", specs).items():
        if name in commands:
            raise RegistryError(f"{name!r} is both a bus command (context {commands[name]!r}) "
                                f"and a bus query (context {context!r})")


def routes(dialect: str, kind: str,
           contexts: Iterable[ContextSpec] | None = None) -> dict[str, str]:
    """Map each name of one kind ("command" or "query") in a dialect to its context.

    `contexts` defaults to the registry (CONTEXTS). A name two contexts answer is
    refused here, where the table is built, so nothing can silently pick one of them.
    """
    if dialect not in DIALECTS:
        raise RegistryError(f"unknown dialect {dialect!r}: expected one of {DIALECTS}")
    table: dict[str, str] = {}
    for spec in CONTEXTS if contexts is None else contexts:
        if spec.dialect != dialect:
            continue
        for name in spec.names(kind):
            if name in table:
                raise RegistryError(f"contexts {table[name]!r} and {spec.name!r} both "
                                    f"answer the {dialect} {kind} {name!r}")
            table[name] = spec.name
    return table


def check_handlers(spec: ContextSpec, kind: str, handled: Iterable[str], where: str) -> None:
    """Refuse a side's handler table (named `where` in the error) unless it answers
    exactly the names of `kind` declared for `spec`: none missing, none extra."""
    declared = spec.names(kind)
    answered = list(handled)
    problems = []
    missing = [name for name in declared if name not in answered]
    if missing:
        problems.append(f"declared but not handled: {', '.join(missing)}")
    extra = [name for name in answered if name not in declared]
    if extra:
        problems.append(f"handled but not declared: {', '.join(extra)}")
    if problems:
        raise RegistryError(f"{where} does not match the {kind} names registered for "
                            f"context {spec.name!r} in common/contexts.py: {'; '.join(problems)}")


CONTEXTS: tuple[ContextSpec, ...] = register(
    ContextSpec("directory", "bus",
                commands=("CreateUser", "RenameUser", "ChangeEmail", "DeactivateUser"),
                queries=("GetUser", "ListUsers", "FindUserByEmail")),
    ContextSpec("accounts", "envelope",
                commands=("CreateUser", "RenameUser", "DeleteUser"),
                queries=("GetUser", "GetUserAtTime", "GetUserHistory", "ListUsers")),
)
