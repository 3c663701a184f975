"""Command ids: the one place they are made and parsed.

Every command carries an id that makes it exactly-once (docs/protocol.md, section 5):

  c:<context>:<client id>   the client named the command (`command_id` / `commandId`)
  n:<boot>:<seq>            the router named it: `boot` is a router run, `seq` its request

Router-made ids are only looked up when a router re-sends after a write side was
lost, so a store keeps them compactly by (boot, seq range); see write_side.store.
"""
from __future__ import annotations

CLIENT = "c:"
ROUTER = "n:"


def from_client(context: str, client_id: str) -> str:
    return f"{CLIENT}{context}:{client_id}"


def from_router(boot: str, seq: int) -> str:
    return f"{ROUTER}{boot}:{seq}"


def router_parts(command_id: str) -> tuple[str, int] | None:
    """(boot, seq) of an id the router made, else None."""
    if not command_id.startswith(ROUTER):
        return None
    boot, _, seq = command_id[len(ROUTER):].rpartition(":")
    return (boot, int(seq)) if boot and seq.isdigit() else None


def split(command_ids: list[str]) -> tuple[list[str], dict[str, dict[int, str]]]:
    """Client-named ids, and router-made ids grouped as {boot: {seq: id}}."""
    named: list[str] = []
    by_router: dict[str, dict[int, str]] = {}
    for cid in command_ids:
        parts = router_parts(cid)
        if parts is None:
            named.append(cid)
        else:
            by_router.setdefault(parts[0], {})[parts[1]] = cid
    return named, by_router
