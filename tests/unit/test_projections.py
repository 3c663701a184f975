"""Both contexts' queries as of any position, from their indexes, against a brute-force fold.

Random histories (creates, renames, email changes, deactivations or deletes, emails taken
again in other cases, even by two users at once, which the write side never allows but the
projection must still answer as the fold does) are applied to a projection; then, at every
position, each query's answer must equal what a plain fold of the events up to that position
gives: the visible users in creation order, paged; the first active user with that email,
case-insensitively. Each history is checked twice: from a projection that holds it all (a
past position) and from one fed event by event (the current state).
"""
from __future__ import annotations

import random
from typing import Any, Callable

import pytest

from read_side import accounts, directory

EMAILS = ["ann@x.io", "bob@x.io", "cy@x.io", "di@x.io", "ed@x.io", "flo@x.io"]
# Changes of an existing stream, as often as listed: deactivations rarer, so pages fill up.
TYPES = {"directory": ("UserRenamed", "UserRenamed", "UserEmailChanged", "UserEmailChanged",
                       "UserEmailChanged", "UserDeactivated"),
         "accounts": ("UserRenamed", "UserRenamed", "UserRenamed", "UserDeleted")}


def some_case(rng: random.Random, email: str) -> str:
    return "".join(c.upper() if rng.random() < 0.3 else c for c in email)


def history(context: str, seed: int, count: int) -> list[dict]:
    """`count` random events of `context`, at increasing positions with gaps (the events of
    other contexts), on streams created along the way."""
    rng = random.Random(seed)
    streams: list[str] = []
    events, position = [], 0
    for n in range(count):
        position += rng.choice((1, 1, 1, 2, 5))
        if not streams or rng.random() < 0.5:
            sid = f"s{len(streams)}"
            streams.append(sid)
            type_, data = "UserCreated", {"name": f"N{n}"}
            if context == "directory":
                data["email"] = some_case(rng, rng.choice(EMAILS))
        else:
            sid = rng.choice(streams)
            type_ = rng.choice(TYPES[context])
            data = {"UserRenamed": {"name": f"N{n}"},
                    "UserEmailChanged": {"email": some_case(rng, rng.choice(EMAILS))}
                    }.get(type_, {})
        events.append({"position": position, "stream_id": sid, "version": n + 1,
                       "type": type_, "data": data, "context": context, "event_id": f"e{n}",
                       "recorded_at": "2024-01-01T00:00:00.000000Z"})
    return events


class Fold:
    """The definition: every stream's state folded from its events, in creation order."""

    def __init__(self, evolve: Callable[[Any, str, dict], Any]) -> None:
        self.evolve = evolve
        self.states: dict[str, Any] = {}
        self._active: list[tuple[str, Any]] | None = None

    def apply(self, event: dict) -> None:
        sid = event["stream_id"]
        self._active = None
        self.states[sid] = self.evolve(self.states.get(sid), event["type"], event["data"])

    def active(self) -> list[tuple[str, Any]]:
        """The active users in creation order (worked out once per state)."""
        if self._active is None:
            self._active = [(sid, s) for sid, s in self.states.items()
                            if s is not None and s.active]
        return self._active

    def page(self, page: int, limit: int) -> list[dict]:
        chosen = self.active()[(page - 1) * limit:page * limit]
        return [{"id": sid, "name": s.name} for sid, s in chosen]

    def by_email(self, email: str) -> dict | None:
        for sid, s in self.active():
            if s.email.lower() == email.lower():
                return {"id": sid, "name": s.name}
        return None


PAGES = [(1, 1), (1, 10), (2, 1), (3, 2), (2, 7), (1, 1000), (40, 3), (1, 200), (2, 200),
         (5, 50), (9, 1)]


def check(projection: Any, fold: Fold, at: int | None, rng: random.Random) -> None:
    """Every ListUsers page above, FindUserByEmail of every email (in some case) and GetUser
    of a few streams, as of `at`, as the fold says."""
    queries = projection.queries
    for page, limit in PAGES:
        assert queries["ListUsers"]({"page": page, "limit": limit}, at) == fold.page(page, limit), (
            at, page, limit)
    if "FindUserByEmail" in queries:
        for email in EMAILS + ["nobody@x.io"]:
            asked = some_case(rng, email)
            assert queries["FindUserByEmail"]({"email": asked}, at) == fold.by_email(asked), (
                at, asked)
    key = "user_id" if "FindUserByEmail" in queries else "userId"
    for sid in rng.sample(sorted(fold.states), min(3, len(fold.states))):
        state = fold.states[sid]
        expected = {"id": sid, "name": state.name} if state is not None and state.active else None
        assert queries["GetUser"]({key: sid}, at) == expected


# Small blocks: every position of a short history. The default block (256 streams): a
# history long enough to cross it, checked at every 7th event (a page folds up to a block).
@pytest.mark.parametrize("block, count, every", [(1, 200, 1), (3, 300, 1), (64, 700, 7)])
@pytest.mark.parametrize("context, module", [("directory", directory), ("accounts", accounts)])
@pytest.mark.parametrize("seed", [1, 2])
def test_answers_as_of_every_position_equal_a_fold(context: str, module: Any, seed: int,
                                                   block: int, count: int, every: int) -> None:
    events = history(context, seed, count)
    whole, live, fold = module.Projection(block), module.Projection(block), Fold(module.evolve)
    for event in events:
        whole.apply(event)
    rng = random.Random(seed)
    check(whole, fold, 0, rng)  # before the first event: nothing
    for n, (event, after) in enumerate(zip(events, events[1:] + [None])):
        fold.apply(event)
        live.apply(event)
        if n % every and after:
            continue
        # Positions between two events (those of other contexts) see the same state.
        last = after["position"] - 1 if after else event["position"] + 3
        for at in sorted({event["position"], last}):
            check(whole, fold, at, rng)
        check(live, fold, None, rng)
    assert len(fold.states) > 2 * block  # blocks were crossed


def test_a_deep_page_as_of_a_position_folds_a_block_not_every_stream() -> None:
    """The cost of a page is bounded by a block, not by the streams before it: count the
    folds (evolve calls) a past page on 20,000 users needs, when every one of them has
    changed since that position (so none can be answered from its current state)."""
    calls = [0]

    def counting(state: Any, type_: str, data: dict) -> Any:
        calls[0] += 1
        return accounts.evolve(state, type_, data)

    projection = accounts.Projection()
    projection.users.evolve = counting
    users = 20_000
    for n in range(2 * users):
        renamed = n >= users
        projection.apply({"position": n + 1, "stream_id": f"s{n % users}", "version": 1 + renamed,
                          "type": "UserRenamed" if renamed else "UserCreated",
                          "data": {"name": f"R{n % users}" if renamed else f"N{n}"},
                          "context": "accounts", "event_id": "e",
                          "recorded_at": "2024-01-01T00:00:00.000000Z"})
    calls[0] = 0
    at = 15_001  # users s0 to s15000 created, none renamed yet
    list_users = projection.queries["ListUsers"]
    assert list_users({"page": 1_500, "limit": 10}, at) == [
        {"id": f"s{n}", "name": f"N{n}"} for n in range(14_990, 15_000)]
    assert list_users({"page": 1_501, "limit": 10}, at) == [{"id": "s15000", "name": "N15000"}]
    assert calls[0] <= 2 * (256 + 10)
