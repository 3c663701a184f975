import pytest

from tests.support.nodeproc import Node


@pytest.fixture
def node_factory():
    """Start nodes with node_factory(*args, env=...); all are stopped and reaped at teardown."""
    nodes = []

    def start(*args, env=None):
        node = Node(*args, env=env)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def node(node_factory):
    """A fresh node with sample data, in plain (non-envelope) mode."""
    return node_factory()
