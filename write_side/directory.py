"""The `directory` context (bus dialect): users registered with a unique email.

Payload errors are collected in PROTOCOL.md's order; business rules are
checked only on a valid payload, and the first that fails is the only error.
"""
from __future__ import annotations

from common.ids import new_uuid
from write_side.aggregate import Aggregate, Rejected
from write_side.batch import Scope
from write_side.validation import (as_payload, is_email, is_text, is_whole,
                                   payload_stream_ids)


class User(Aggregate):
    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.name = ""
        self.email = ""
        self.active = False

    def on_UserCreated(self, data: dict) -> None:
        self.name, self.email, self.active = data["name"], data["email"], True

    def on_UserRenamed(self, data: dict) -> None:
        self.name = data["name"]

    def on_UserEmailChanged(self, data: dict) -> None:
        self.email = data["email"]

    def on_UserDeactivated(self, data: dict) -> None:
        self.active = False

    def claims(self) -> set[tuple[str, str]]:
        # A deactivated user keeps their email: nobody can register it again.
        return {("email", self.email.lower())} if self.email else set()

    def check_exists(self) -> None:
        if not self.exists:
            raise Rejected("User not found")

    def check_active(self) -> None:
        if not self.active:
            raise Rejected("User is deactivated")


def payload_errors(payload: dict, fields: tuple[str, ...]) -> list[str]:
    """Every payload error of the named fields, in the protocol's order."""
    errors = []
    if "name" in fields and not is_text(payload.get("name")):
        errors.append("Name is required")
    if "email" in fields:
        email = payload.get("email")
        if email is None or (isinstance(email, str) and not email.strip()):
            errors.append("Email is required")
        elif not is_email(email):
            errors.append("Email is invalid")
    if "age" in fields and "age" in payload:
        age = payload["age"]
        if not is_whole(age) or age < 0:
            errors.append("Age must be a non-negative integer")
        elif age < 18:
            errors.append("User must be 18 or older")
    if "id" in fields and not is_text(payload.get("id")):
        errors.append("Id is required")
    return errors


def _valid(args: dict, fields: tuple[str, ...]) -> dict:
    payload = as_payload(args)
    errors = payload_errors(payload, fields)
    if errors:
        raise Rejected(*errors)
    return payload


def _check_email_free(scope: Scope, email: str, user_id: str | None) -> None:
    owner = scope.claim_owner("email", email.lower())
    if owner is not None and owner != user_id:
        raise Rejected("Email is already registered")


def _existing(scope: Scope, payload: dict) -> User:
    user = scope.load(payload["id"])
    user.check_exists()
    user.check_active()
    return user


def create_user(scope: Scope, args: dict, expected: int | None) -> list[dict]:
    payload = _valid(args, ("name", "email", "age"))
    _check_email_free(scope, payload["email"], None)
    user = scope.new(new_uuid())
    data = {"id": user.id, "name": payload["name"], "email": payload["email"]}
    if "age" in payload:
        data["age"] = int(payload["age"])
    scope.emit(user, "UserCreated", data)
    return [{"type": "UserCreated", "payload": {"id": user.id, "name": payload["name"]}}]


def rename_user(scope: Scope, args: dict, expected: int | None) -> list[dict]:
    payload = _valid(args, ("name", "id"))
    user = _existing(scope, payload)
    user.check_expected_version(expected)
    scope.emit(user, "UserRenamed", {"id": user.id, "name": payload["name"]})
    return [{"type": "UserRenamed", "payload": {"id": user.id, "name": payload["name"]}}]


def change_email(scope: Scope, args: dict, expected: int | None) -> list[dict]:
    payload = _valid(args, ("email", "id"))
    user = _existing(scope, payload)
    _check_email_free(scope, payload["email"], user.id)
    user.check_expected_version(expected)
    scope.emit(user, "UserEmailChanged", {"id": user.id, "email": payload["email"]})
    return [{"type": "UserEmailChanged", "payload": {"id": user.id}}]


def deactivate_user(scope: Scope, args: dict, expected: int | None) -> list[dict]:
    payload = _valid(args, ("id",))
    user = _existing(scope, payload)
    user.check_expected_version(expected)
    scope.emit(user, "UserDeactivated", {"id": user.id})
    return [{"type": "UserDeactivated", "payload": {"id": user.id}}]


stream_ids = payload_stream_ids  # the batch loads these streams at once
AGGREGATE = User
# Exactly the commands registered for "directory" in common/contexts.py: the write side
# refuses to start otherwise (write_side.contexts.load_all).
COMMANDS = {
    "CreateUser": create_user,
    "RenameUser": rename_user,
    "ChangeEmail": change_email,
    "DeactivateUser": deactivate_user,
}
# (stream_id, event type, data, recorded_at): written once into an empty store.
SAMPLE = [
    ("user-123", "UserCreated",
     {"id": "user-123", "name": "John Doe", "email": "john.doe@example.com"},
     "2024-01-10T08:00:00.000000Z"),
]
