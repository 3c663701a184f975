"""The bus dialect (PROTOCOL.md section 3, the `directory` context): request bodies and the
replies expected to them.

Without msg_id a body is for a dialogue.Session, which numbers what it sends.
"""
from __future__ import annotations

import uuid
from typing import Any

from tests.support.dialogue import Reply, numbered, unique

# -- requests ------------------------------------------------------------------------------


def command(ctype: str, payload: Any, *, msg_id: int | None = None, **top: Any) -> dict:
    """top: expected_version / command_id, which sit beside the payload."""
    return numbered({"type": ctype, "payload": payload, **top}, msg_id)


def create(name: Any, email: Any, *, msg_id: int | None = None, **payload: Any) -> dict:
    top = {k: payload.pop(k) for k in ("expected_version", "command_id") if k in payload}
    return command("CreateUser", {"name": name, "email": email, **payload}, msg_id=msg_id, **top)


def rename(uid: str, name: Any, **top: Any) -> dict:
    return command("RenameUser", {"id": uid, "name": name}, **top)


def change_email(uid: str, email: Any, **top: Any) -> dict:
    return command("ChangeEmail", {"id": uid, "email": email}, **top)


def deactivate(uid: str, **top: Any) -> dict:
    return command("DeactivateUser", {"id": uid}, **top)


def query(qtype: str, *, msg_id: int | None = None, **params: Any) -> dict:
    return numbered({"type": qtype, "params": params}, msg_id)


def get_user(uid: str, *, msg_id: int | None = None) -> dict:
    return query("GetUser", msg_id=msg_id, user_id=uid)


def find_by_email(email: str, *, msg_id: int | None = None) -> dict:
    return query("FindUserByEmail", msg_id=msg_id, email=email)


def list_users(*, msg_id: int | None = None, **params: Any) -> dict:
    return query("ListUsers", msg_id=msg_id, **params)


def new_email(tag: str = "u") -> str:
    """A fresh, valid email no other test uses."""
    return f"{unique(tag)}@example.com"


# -- expected replies ------------------------------------------------------------------------

def user_created(uid: str, name: str) -> dict:
    return {"type": "UserCreated", "payload": {"id": uid, "name": name}}


def user_renamed(uid: str, name: str) -> dict:
    return {"type": "UserRenamed", "payload": {"id": uid, "name": name}}


def email_changed(uid: str) -> dict:
    return {"type": "UserEmailChanged", "payload": {"id": uid}}


def user_deactivated(uid: str) -> dict:
    return {"type": "UserDeactivated", "payload": {"id": uid}}


def created_id(reply: Reply | dict) -> str:
    """The id in a CreateUser success reply (a Reply, or a reply already parsed); it must be
    a canonical UUID string."""
    body = reply.body if isinstance(reply, Reply) else reply
    assert body.get("success") is True, body
    uid = body["events"][0]["payload"]["id"]
    assert str(uuid.UUID(uid)) == uid, f"not a canonical UUID: {uid!r}"
    return uid
