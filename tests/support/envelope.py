"""The envelope dialect (PROTOCOL.md section 4, the `accounts` context): request bodies and the
replies expected to them.

Without msg_id a body is for a dialogue.Session, which numbers what it sends.
"""
from __future__ import annotations

from typing import Any

from tests.support.dialogue import numbered, ok

# -- requests ------------------------------------------------------------------------------


def command(ctype: str, payload: Any, *, msg_id: int | None = None, **extra: Any) -> dict:
    """extra: expectedVersion / commandId, which sit in the command object."""
    return numbered({"type": "command", "command": {"type": ctype, "payload": payload, **extra}},
                    msg_id)


def create(uid: str, name: str, **extra: Any) -> dict:
    return command("CreateUser", {"id": uid, "name": name}, **extra)


def rename(uid: str, name: str, **extra: Any) -> dict:
    return command("RenameUser", {"id": uid, "name": name}, **extra)


def delete(uid: str, **extra: Any) -> dict:
    return command("DeleteUser", {"id": uid}, **extra)


def query(qtype: str, *, msg_id: int | None = None, **params: Any) -> dict:
    return numbered({"type": "query", "query": {"type": qtype, "params": params}}, msg_id)


def get_user(uid: str, *, msg_id: int | None = None) -> dict:
    return query("GetUser", msg_id=msg_id, userId=uid)


def at_time(uid: str, timestamp: Any, *, msg_id: int | None = None) -> dict:
    return query("GetUserAtTime", msg_id=msg_id, userId=uid, timestamp=timestamp)


def history(uid: str, *, msg_id: int | None = None) -> dict:
    return query("GetUserHistory", msg_id=msg_id, userId=uid)


def list_users(*, msg_id: int | None = None, **params: Any) -> dict:
    return query("ListUsers", msg_id=msg_id, **params)


# -- expected replies (in_reply_to is filled in by dialogue.assert_reply) ---------------------

def created(uid: str) -> dict:
    return ok({"eventType": "UserCreated", "aggregateId": uid})


def renamed(uid: str) -> dict:
    return ok({"eventType": "UserRenamed", "aggregateId": uid})


def deleted(uid: str) -> dict:
    return ok({"eventType": "UserDeleted", "aggregateId": uid})


def user_at(uid: str, name: str, timestamp: str) -> dict:
    return {"id": uid, "name": name, "at_time": timestamp}
