"""Reading a node's `stats` reply: the router's view of itself and of every back-end process.

Works over any client with request(body, timeout) -> reply: a nodeproc.Node (stdin/stdout)
or a dealer.Dealer (service mode). Call it with no other reply outstanding on a Node, whose
replies come strictly in order.
"""
from __future__ import annotations

from typing import Protocol

STATS_ID = 1_000_000_000  # msg_id of stats requests, far from the ids of the tests' scripts
TIMEOUT = 60.0  # generous: a busy 2-core machine


class Client(Protocol):
    def request(self, body: dict, timeout: float, /) -> dict: ...


def stats(client: Client, msg_id: int = STATS_ID, timeout: float = TIMEOUT) -> dict:
    """The data of one stats reply."""
    reply = client.request({"type": "stats", "msg_id": msg_id}, timeout)
    assert reply["type"] == "stats_result" and reply["in_reply_to"] == msg_id, reply
    return reply["data"]


def processes(client: Client, role: str, msg_id: int = STATS_ID,
              timeout: float = TIMEOUT) -> dict[int, dict]:
    """pid -> stats entry of every process of this role ("write", "read") the router knows."""
    return {p["pid"]: p for p in stats(client, msg_id, timeout)["processes"] if p["role"] == role}


def process(client: Client, role: str) -> dict:
    """The single process of this role, as stats shows it ({} if none is known)."""
    found = list(processes(client, role).values())
    assert len(found) <= 1, found
    return found[0] if found else {}
