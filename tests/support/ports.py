"""Free loopback TCP ports for nodes that bind their own endpoints.

A port is free only at the moment it is checked; another process may take it before the node
binds it. Tests accept that small race rather than retrying, as a bind failure is loud.
"""
from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports nobody listens on (all bound at once, then released)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_pair() -> int:
    """A port P such that P and P + 1 were both free a moment ago (the node binds its
    catch-up socket on the port after its events endpoint's)."""
    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


def free_events_endpoint() -> str:
    """A TCP events endpoint for a node: a free port with a free one after it."""
    return f"tcp://127.0.0.1:{free_port_pair()}"
