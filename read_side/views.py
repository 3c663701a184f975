"""The public view of a user, shared by both contexts: id and name, hidden once inactive."""
from __future__ import annotations

from typing import Any

from read_side.params import page_of, paging
from read_side.streams import StreamTable


def user_view(user_id: str, state: Any) -> dict | None:
    """`state` is any context's user state with `name` and `active`."""
    if state is None or not state.active:
        return None
    return {"id": user_id, "name": state.name}


def list_users(users: StreamTable, params: dict, at: int | None) -> Any:
    """A page of active users, oldest first, as of position `at`."""
    offset, limit = paging(params)
    views = (user_view(sid, state) for sid, state in users.states(at))
    return page_of((v for v in views if v), offset, limit)
