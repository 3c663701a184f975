"""The contexts registry: declared once, refused at start when ambiguous or when a side's
handlers do not match it."""
import importlib
import sys
import types

import pytest

from common.contexts import CONTEXTS, ContextSpec, RegistryError, register, routes
from read_side import contexts as read_contexts
from write_side import contexts as write_contexts


@pytest.mark.parametrize("spec", CONTEXTS, ids=lambda spec: spec.name)
def test_each_registered_context_has_both_modules_answering_exactly_its_names(spec):
    write_module = importlib.import_module(f"write_side.{spec.name}")
    read_module = importlib.import_module(f"read_side.{spec.name}")
    assert sorted(write_module.COMMANDS) == sorted(spec.commands)
    assert sorted(read_module.Projection().queries) == sorted(spec.queries)


def test_both_sides_load_every_registered_context():
    names = [spec.name for spec in CONTEXTS]
    assert list(write_contexts.load_all()) == names
    assert list(read_contexts.load_all()) == names


def test_the_router_tables_come_from_the_registry():
    assert routes("bus", "command")["CreateUser"] == "directory"
    assert routes("bus", "query")["FindUserByEmail"] == "directory"
    assert routes("envelope", "command")["CreateUser"] == "accounts"
    assert routes("envelope", "query")["GetUserAtTime"] == "accounts"
    assert "DeleteUser" not in routes("bus", "command")


@pytest.mark.parametrize("kind", ["commands", "queries", "cmd"])
def test_routes_takes_one_word_per_kind(kind):
    with pytest.raises(RegistryError, match="unknown request kind"):
        routes("bus", kind)


@pytest.mark.parametrize("kind", ["commands", "queries"])
def test_a_name_two_contexts_of_one_dialect_answer_is_refused(kind):
    with pytest.raises(RegistryError) as refused:
        register(ContextSpec("first", "bus", **{kind: ("Ping",)}),
                 ContextSpec("second", "bus", **{kind: ("Ping",)}))
    message = str(refused.value)
    assert "'first'" in message and "'second'" in message and "'Ping'" in message


def test_the_same_name_in_two_dialects_is_allowed():
    both = register(ContextSpec("on_bus", "bus", commands=("CreateUser",)),
                    ContextSpec("in_envelope", "envelope", commands=("CreateUser",)))
    assert routes("bus", "command", both) == {"CreateUser": "on_bus"}
    assert routes("envelope", "command", both) == {"CreateUser": "in_envelope"}


def test_an_envelope_command_and_query_may_share_a_name():
    # The envelope wraps the name in "command" or "query", which tells them apart.
    shared = register(ContextSpec("a", "envelope", commands=("Sync",)),
                      ContextSpec("b", "envelope", queries=("Sync",)))
    assert routes("envelope", "command", shared) == {"Sync": "a"}
    assert routes("envelope", "query", shared) == {"Sync": "b"}


def test_a_bus_command_and_query_may_not_share_a_name():
    # A bus request's type is the bare name: the router could not tell them apart.
    with pytest.raises(RegistryError, match="'Sync' is both a bus command .*'a'.* query .*'b'"):
        register(ContextSpec("a", "bus", commands=("Sync",)),
                 ContextSpec("b", "bus", queries=("Sync",)))


@pytest.mark.parametrize("specs, fault", [
    ((ContextSpec("x", "bus"), ContextSpec("x", "envelope")), "registered twice"),
    ((ContextSpec("x", "Bus"),), "unknown dialect 'Bus'"),
    ((ContextSpec("x", "bus", queries=("Get", "Get")),), "declares the query Get twice"),
])
def test_a_malformed_registration_is_refused(specs, fault):
    with pytest.raises(RegistryError, match=fault):
        register(*specs)


@pytest.fixture
def stray_context(monkeypatch):
    """A context "stray" declaring commands A, B and queries P, Q, whose modules handle
    A, C and P, R instead."""
    def handler(*args):
        return None

    write_module = types.ModuleType("write_side.stray")
    write_module.COMMANDS = {"A": handler, "C": handler}
    read_module = types.ModuleType("read_side.stray")

    class Projection:
        def __init__(self):
            self.queries = {"P": handler, "R": handler}

    read_module.Projection = Projection
    # Placed where load_all imports from, as if write_side/stray.py and read_side/stray.py
    # existed; monkeypatch removes them again.
    monkeypatch.setitem(sys.modules, "write_side.stray", write_module)
    monkeypatch.setitem(sys.modules, "read_side.stray", read_module)
    return register(ContextSpec("stray", "bus", commands=("A", "B"), queries=("P", "Q")))


def test_the_write_side_refuses_commands_that_differ_from_the_registration(stray_context):
    with pytest.raises(RegistryError) as refused:
        write_contexts.load_all(stray_context)
    message = str(refused.value)
    assert "write_side.stray.COMMANDS" in message and "'stray'" in message
    assert "declared but not handled: B" in message and "handled but not declared: C" in message


def test_the_read_side_refuses_queries_that_differ_from_the_registration(stray_context):
    with pytest.raises(RegistryError) as refused:
        read_contexts.load_all(stray_context)
    message = str(refused.value)
    assert "read_side.stray.Projection().queries" in message and "'stray'" in message
    assert "declared but not handled: Q" in message and "handled but not declared: R" in message


def test_a_missing_handler_alone_is_refused(stray_context):
    sys.modules["write_side.stray"].COMMANDS = {"A": print}
    with pytest.raises(RegistryError, match="declared but not handled: B$"):
        write_contexts.load_all(stray_context)
