"""The public view of a user, shared by both contexts: id and name, hidden once inactive."""
from __future__ import annotations

from typing import Any

from read_side.params import paging
from read_side.streams import StreamTable


def visible(state: Any) -> bool:
    """Whether a user state is shown at all: created (not None) and still active."""
    return state is not None and state.active


def user_view(user_id: str, state: Any) -> dict | None:
    """`state` is any context's user state with `name` and `active`."""
    if not visible(state):
        return None
    return {"id": user_id, "name": state.name}


def list_users(users: StreamTable, params: dict, at: int | None) -> Any:
    """A page of active users, oldest first, as of position `at`."""
    offset, limit = paging(params)
    return [user_view(sid, state) for sid, state in users.visible_page(offset, limit, at)]
