"""Request builders, each paired with the part of its reply the verifier insists on."""
from __future__ import annotations

import json
from typing import Any

Pair = tuple[dict[str, Any], dict[str, Any]]

SAMPLE_ID = "user-123"
SAMPLE_ACCOUNTS_NAME = "John"  # the accounts stream's latest name (PROTOCOL.md section 4)


def bus_create(msg_id: int, i: int) -> Pair:
    """Bus CreateUser with a unique email, expecting success and its UserCreated event."""
    name = f"Bench User {i}"
    request = {"type": "CreateUser", "msg_id": msg_id,
               "payload": {"name": name, "email": f"bench.user{i}@example.com"}}
    reply = {"type": "command_result", "in_reply_to": msg_id, "success": True,
             "events": [{"type": "UserCreated", "payload": {"name": name}}]}
    return request, reply


def bus_rename(msg_id: int, user_id: str, name: str) -> Pair:
    """Bus RenameUser of an existing user, expecting success and its UserRenamed event."""
    request = {"type": "RenameUser", "msg_id": msg_id, "payload": {"id": user_id, "name": name}}
    reply = {"type": "command_result", "in_reply_to": msg_id, "success": True,
             "events": [{"type": "UserRenamed", "payload": {"id": user_id, "name": name}}]}
    return request, reply


def bus_get(msg_id: int, user_id: str, name: str) -> Pair:
    """Bus GetUser, expecting exactly that user."""
    request = {"type": "GetUser", "msg_id": msg_id, "params": {"user_id": user_id}}
    reply = {"type": "query_result", "in_reply_to": msg_id, "data": {"id": user_id, "name": name}}
    return request, reply


def env_create(msg_id: int, user_id: str, name: str) -> Pair:
    """Envelope CreateUser for a client-chosen id, expecting success."""
    request = {"type": "command", "msg_id": msg_id,
               "command": {"type": "CreateUser", "payload": {"id": user_id, "name": name}}}
    reply = {"type": "command_result", "in_reply_to": msg_id, "success": True,
             "events": [{"eventType": "UserCreated", "aggregateId": user_id}]}
    return request, reply


def env_rename(msg_id: int, user_id: str, name: str) -> Pair:
    """Envelope RenameUser of an existing user, expecting success."""
    request = {"type": "command", "msg_id": msg_id,
               "command": {"type": "RenameUser", "payload": {"id": user_id, "name": name}}}
    reply = {"type": "command_result", "in_reply_to": msg_id, "success": True,
             "events": [{"eventType": "UserRenamed", "aggregateId": user_id}]}
    return request, reply


def env_get(msg_id: int, user_id: str, name: str) -> Pair:
    """Envelope GetUser, expecting exactly that user."""
    request = {"type": "query", "msg_id": msg_id,
               "query": {"type": "GetUser", "params": {"userId": user_id}}}
    reply = {"type": "query_result", "in_reply_to": msg_id, "data": {"id": user_id, "name": name}}
    return request, reply


def sample_get(msg_id: int) -> Pair:
    """Envelope GetUser for the sample user every fresh node has."""
    return env_get(msg_id, SAMPLE_ID, SAMPLE_ACCOUNTS_NAME)


def encode(requests: list[dict[str, Any]]) -> bytes:
    """All requests as JSON lines, ready to write in one go."""
    return "".join(json.dumps(r) + "\n" for r in requests).encode()


def chunks(requests: list[dict[str, Any]], size: int) -> list[tuple[bytes, int]]:
    """Requests encoded in chunks of at most size, each with its request count."""
    return [(encode(requests[i:i + size]), len(requests[i:i + size]))
            for i in range(0, len(requests), size)]


def split(pairs: list[Pair]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(requests, expected replies) from a list of pairs."""
    return [p[0] for p in pairs], [p[1] for p in pairs]
