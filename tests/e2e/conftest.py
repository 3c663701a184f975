"""Fixtures that start nodes (each stopped, with all its processes, at teardown)."""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

from tests.support.dialogue import Session
from tests.support.nodeproc import Node
from tests.support.ports import free_events_endpoint
from tests.support.postgres import Cluster

NodeFactory = Callable[..., Node]


@pytest.fixture
def node_factory() -> Iterator[NodeFactory]:
    """Start nodes with node_factory(*args, env=...); all are stopped and reaped at teardown."""
    nodes: list[Node] = []

    def start(*args: str, env: dict | None = None) -> Node:
        node = Node(*args, env=env)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def node(node_factory: NodeFactory) -> Node:
    """A fresh node with sample data, in plain (non-envelope) mode."""
    return node_factory()


@pytest.fixture
def tcp_node(node_factory: NodeFactory) -> Callable[..., tuple[Node, str]]:
    """tcp_node(*args): a node publishing its events on a free TCP port, its catch-up socket
    on the next one (also free); returns (node, events endpoint)."""
    def start(*args: str) -> tuple[Node, str]:
        endpoint = free_events_endpoint()
        return node_factory("--events-endpoint", endpoint, *args), endpoint

    return start


# -- a module's shared node, for dialogue tests ---------------------------------------------

@pytest.fixture(scope="module")
def shared_node() -> Iterator[Node]:
    """One node (sample data on) for a whole test module: its tests use fresh ids."""
    node = Node()
    yield node
    node.stop()


@pytest.fixture
def session_class() -> type[Session]:
    """The Session class `s` and `empty` build; a module overrides this fixture to add its
    dialect's own conversation helpers."""
    return Session


@pytest.fixture
def s(shared_node: Node, session_class: type[Session]) -> Session:
    """The module's shared node (sample data on), drained of any leftover reply."""
    session = session_class(shared_node)
    session.sync()
    return session


@pytest.fixture
def empty(node_factory: NodeFactory, session_class: type[Session]) -> Session:
    """A node of this test's own, with an empty store."""
    return session_class(node_factory("--no-sample-data"))


# -- PostgreSQL ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One throw-away PostgreSQL server for the whole run (tests/support/postgres.py): the
    tests that use it skip, with the reason, where none can be started (and fail instead
    under CQRS_REQUIRE_POSTGRES=1)."""
    cluster = Cluster.start()
    yield cluster
    cluster.remove()


@pytest.fixture
def postgres_store(postgres_cluster: Cluster) -> str:
    """The URL of a fresh, empty database of this test's own, for --store."""
    return postgres_cluster.new_database()
