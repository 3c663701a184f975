"""The `accounts` context (envelope dialect): users with client-chosen ids, renamed over time.

Order of checks: payload (all errors together), then the expected version,
then existence (first failure only).
"""
from __future__ import annotations

from write_side.aggregate import Aggregate, Rejected
from write_side.batch import Scope
from write_side.validation import as_payload, is_text, payload_stream_ids


class Account(Aggregate):
    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.created_name: str | None = None
        self.deleted = False

    def on_UserCreated(self, data: dict) -> None:
        self.created_name = data["name"]

    def on_UserRenamed(self, data: dict) -> None:
        pass  # no rule depends on the current name

    def on_UserDeleted(self, data: dict) -> None:
        self.deleted = True

    def check_exists(self) -> None:
        if not self.exists:
            raise Rejected("User not found")

    def check_not_deleted(self) -> None:
        if self.deleted:
            raise Rejected("User is deleted")


def _valid(args: dict, fields: tuple[str, ...]) -> dict:
    payload = as_payload(args)
    errors = []
    if not is_text(payload.get("id")):
        errors.append("Id is required")
    if "name" in fields and not is_text(payload.get("name")):
        errors.append("Name is required")
    if errors:
        raise Rejected(*errors)
    return payload


def _reply(type_: str, stream_id: str) -> list[dict]:
    return [{"eventType": type_, "aggregateId": stream_id}]


def create_user(scope: Scope, args: dict, expected: int | None) -> list[dict]:
    payload = _valid(args, ("id", "name"))
    account = scope.load(payload["id"])
    account.check_expected_version(expected)
    if account.exists:
        # A repeat with the original name is the same command again: nothing new to store.
        if account.created_name == payload["name"]:
            return _reply("UserCreated", account.id)
        raise Rejected(f"User {account.id} already exists")
    scope.emit(account, "UserCreated", {"name": payload["name"]})
    return _reply("UserCreated", account.id)


def rename_user(scope: Scope, args: dict, expected: int | None) -> list[dict]:
    payload = _valid(args, ("id", "name"))
    account = _existing(scope, payload, expected)
    scope.emit(account, "UserRenamed", {"name": payload["name"]})
    return _reply("UserRenamed", account.id)


def delete_user(scope: Scope, args: dict, expected: int | None) -> list[dict]:
    payload = _valid(args, ("id",))
    account = _existing(scope, payload, expected)
    scope.emit(account, "UserDeleted", {})
    return _reply("UserDeleted", account.id)


def _existing(scope: Scope, payload: dict, expected: int | None) -> Account:
    account = scope.load(payload["id"])
    account.check_expected_version(expected)
    account.check_exists()
    account.check_not_deleted()
    return account


stream_ids = payload_stream_ids  # the batch loads these streams at once
AGGREGATE = Account
# Exactly the commands registered for "accounts" in common/contexts.py: the write side
# refuses to start otherwise (write_side.contexts.load_all).
COMMANDS = {"CreateUser": create_user, "RenameUser": rename_user, "DeleteUser": delete_user}
SAMPLE = [
    ("user-123", "UserCreated", {"name": "John"}, "2024-01-01T00:00:00.000000Z"),
    ("user-123", "UserRenamed", {"name": "John Doe"}, "2024-01-10T00:00:00.000000Z"),
    ("user-123", "UserRenamed", {"name": "John"}, "2024-02-01T00:00:00.000000Z"),
]
