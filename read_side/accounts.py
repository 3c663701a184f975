"""The `accounts` context's projection and queries (envelope dialect), temporal ones included."""
from __future__ import annotations

from typing import Any, NamedTuple

from common.timefmt import canonical
from read_side.params import bad_param, text
from read_side.streams import BLOCK, StreamTable
from read_side.views import list_users, user_view, visible


class Account(NamedTuple):
    """A user's current state: a tuple, a third the size of a dict. (Built with the
    constructor, not _replace, which is several times slower.)"""
    name: str
    active: bool


def evolve(state: Account | None, type_: str, data: dict) -> Account | None:
    if type_ == "UserCreated":
        return Account(data["name"], True)
    if state is None:
        return None
    if type_ == "UserRenamed":
        return Account(data["name"], state.active)
    if type_ == "UserDeleted":
        return Account(state.name, False)
    return state


class Projection:
    def __init__(self, block: int = BLOCK) -> None:
        """`block`: the StreamTable's page-index block (small in tests, to cross many)."""
        self.users = StreamTable(evolve, visible, block)
        # Exactly the queries registered for "accounts" in common/contexts.py: the read
        # side refuses to start otherwise (read_side.contexts.load_all).
        self.queries = {"GetUser": self.get_user, "GetUserAtTime": self.get_user_at_time,
                        "GetUserHistory": self.get_user_history, "ListUsers": self.list_users}

    def apply(self, event: dict) -> None:
        self.users.apply(event)

    def get_user(self, params: dict, at: int | None) -> Any:
        user_id = text(params, "userId")
        return user_view(user_id, self.users.state(user_id, at))

    def get_user_at_time(self, params: dict, at: int | None) -> Any:
        user_id = text(params, "userId")
        given = params.get("timestamp")
        try:
            moment = canonical(given)
        except (TypeError, ValueError):
            raise bad_param("param timestamp must be an ISO-8601 timestamp")
        view = user_view(user_id, self.users.state_at_time(user_id, moment, at))
        return view and {**view, "at_time": given}

    def get_user_history(self, params: dict, at: int | None) -> Any:
        user_id = text(params, "userId")
        return [{"eventType": type_, "version": version, "recordedAt": recorded_at, "data": data}
                for _pos, recorded_at, version, type_, data in self.users.events(user_id, at)]

    def list_users(self, params: dict, at: int | None) -> Any:
        return list_users(self.users, params, at)
