"""The `directory` context's projection and queries (bus dialect)."""
from __future__ import annotations

from typing import Any, NamedTuple

from read_side.params import text
from read_side.streams import BLOCK, StreamTable
from read_side.views import list_users, user_view, visible


class User(NamedTuple):
    """A user's current state: a tuple, a third the size of a dict. (Built with the
    constructor, not _replace, which is several times slower.)"""
    name: str
    email: str
    active: bool


def evolve(state: User | None, type_: str, data: dict) -> User | None:
    if type_ == "UserCreated":
        return User(data["name"], data["email"], True)
    if state is None:
        return None
    if type_ == "UserRenamed":
        return User(data["name"], state.email, state.active)
    if type_ == "UserEmailChanged":
        return User(state.name, data["email"], state.active)
    if type_ == "UserDeactivated":
        return User(state.name, state.email, False)
    return state


class Projection:
    def __init__(self, block: int = BLOCK) -> None:
        """`block`: the StreamTable's page-index block (small in tests, to cross many)."""
        self.users = StreamTable(evolve, visible, block)
        # Lower-cased email -> every user who ever took it (case-insensitively), in the order
        # they took it: one id, or a list when several did (an address freed by a change and
        # taken again). Whoever holds an email as of any position is among them, so a query
        # folds these few users' states as of its position, whatever the position, instead
        # of scanning every stream. One id, not a list, in the usual case: no list per email.
        self.takers: dict[str, str | list[str]] = {}
        # Exactly the queries registered for "directory" in common/contexts.py: the read
        # side refuses to start otherwise (read_side.contexts.load_all).
        self.queries = {"GetUser": self.get_user, "ListUsers": self.list_users,
                        "FindUserByEmail": self.find_by_email}

    def apply(self, event: dict) -> None:
        sid = event["stream_id"]
        current = self.users.current
        before = current.get(sid)
        self.users.apply(event)
        after = current[sid]
        # Identity first: a rename or a deactivation carries the same email object over.
        if after is None or (before is not None and after.email is before.email):
            return
        email = after.email.lower()
        takers = self.takers.get(email)
        if takers is None:
            self.takers[email] = sid
        elif isinstance(takers, str):
            if takers != sid:
                self.takers[email] = [takers, sid]
        elif sid not in takers:
            takers.append(sid)

    def get_user(self, params: dict, at: int | None) -> Any:
        user_id = text(params, "user_id")
        return user_view(user_id, self.users.state(user_id, at))

    def list_users(self, params: dict, at: int | None) -> Any:
        return list_users(self.users, params, at)

    def find_by_email(self, params: dict, at: int | None) -> Any:
        """The first user in creation order who, as of `at`, is active and has this email
        (compared case-insensitively)."""
        wanted = text(params, "email").lower()
        takers = self.takers.get(wanted)
        if takers is None:
            return None
        if isinstance(takers, str):
            takers = [takers]
        else:  # taken in another order than created: creation order counts
            history = self.users.history
            takers = sorted(takers, key=lambda sid: history[sid][0][0])
        for sid in takers:
            state = self.users.state(sid, at)
            if visible(state) and state.email.lower() == wanted:
                return user_view(sid, state)
        return None
