"""Queries about a past position, in bulk (issue 12): a query answers the state as of the
commands before it on the input, even when the read side has already applied the commands
pipelined behind it. FindUserByEmail and ListUsers used to scan every stream for that, so
10,000 pipelined create-then-query pairs took minutes and the read side, silent while
scanning, was dropped as dead (every query got error 11). Each test here pipelines such a
burst on a fresh node (no sample data) and checks every reply line exactly against a model
of the state each query must see.
"""
from __future__ import annotations

import math
import random
from typing import Any

from tests.support import bus, envelope
from tests.support.dialogue import Reply, Session, assert_reply, ok, result, user
from tests.support.stats import processes

N = 10_000  # create-then-query pairs, as in the issue


class Model:
    """The users a query must see: creation order, current names, deactivated ones hidden."""

    def __init__(self) -> None:
        self.active: list[str] = []  # ids of active users, in creation order
        self.names: dict[str, str] = {}

    def create(self, uid: str, name: str) -> None:
        self.active.append(uid)
        self.names[uid] = name

    def rename(self, uid: str, name: str) -> None:
        self.names[uid] = name

    def deactivate(self, uid: str) -> None:
        self.active.remove(uid)

    def page(self, page: int, limit: int) -> list[dict]:
        return [user(uid, self.names[uid])
                for uid in self.active[(page - 1) * limit:page * limit]]


def paging(rng: random.Random, model: Model) -> dict[str, int]:
    """ListUsers params: mostly the page that ends with the newest user (the one a past
    position must cut at), else any page up to one past the end."""
    limit = rng.choice((1, 10, 100, 1000))
    pages = max(1, math.ceil(len(model.active) / limit))
    page = pages if rng.random() < 0.7 else rng.randint(1, pages + 1)
    return {"page": page, "limit": limit}


def expect_all(replies: list[Reply], expected: list[Any]) -> None:
    """Every reply line exactly as expected (a dict, or a function of the reply for those
    whose content the node generates)."""
    assert len(replies) == len(expected)
    for reply, want in zip(replies, expected):
        assert_reply(reply, want(reply) if callable(want) else want)


def test_each_find_user_by_email_finds_the_user_just_created(node_factory) -> None:
    s = Session(node_factory("--no-sample-data"))
    people = [(f"User {i}", f"user{i}@example.com") for i in range(N)]
    bodies = []
    for i, (name, email) in enumerate(people):
        # Emails are compared case-insensitively: every other query asks in capitals.
        bodies += [bus.create(name, email), bus.find_by_email(email.upper() if i % 2 else email)]
    replies = s.pipeline(bodies)
    for (name, _), made, found in zip(people, replies[0::2], replies[1::2]):
        uid = bus.created_id(made)
        assert_reply(made, ok(bus.user_created(uid, name)))
        assert_reply(found, result(user(uid, name)))


def test_list_users_after_each_create_sees_exactly_the_users_before_it(node_factory) -> None:
    """Bus dialect. The ids are the node's, so the burst is creates and ListUsers only; the
    expected pages are worked out once the creates' replies have named the ids."""
    s = Session(node_factory("--no-sample-data"))
    rng = random.Random(12)
    sizes = Model()  # only its length matters while the requests are written
    bodies, params = [], []
    for i in range(N):
        sizes.create(str(i), "")
        params.append(paging(rng, sizes))
        bodies += [bus.create(f"User {i}", f"user{i}@example.com"), bus.list_users(**params[-1])]
    replies = s.pipeline(bodies)
    model, expected = Model(), []
    for i, made in enumerate(replies[0::2]):
        uid = bus.created_id(made)
        model.create(uid, f"User {i}")
        expected += [ok(bus.user_created(uid, f"User {i}")), result(model.page(**params[i]))]
    expect_all(replies, expected)


def test_a_pipelined_mix_of_changes_and_queries_sees_each_change_in_order(node_factory) -> None:
    """Bus dialect, after the users exist: renames, email changes and deactivations pipelined
    with ListUsers and FindUserByEmail of old and new addresses; each query must see every
    change before it and none after it."""
    s = Session(node_factory("--no-sample-data"))
    count = 2_000
    made = s.pipeline([bus.create(f"User {i}", f"user{i}@example.com") for i in range(count)])
    model, emails, bodies, expected = Model(), {}, [], []
    for i, reply in enumerate(made):
        uid = bus.created_id(reply)
        model.create(uid, f"User {i}")
        emails[uid] = f"user{i}@example.com"
    rng = random.Random(7)
    for step in range(N // 2):
        uid = rng.choice(model.active)
        kind = rng.choice(("rename", "email", "deactivate"))
        if kind == "rename":
            model.rename(uid, f"Name {step}")
            bodies.append(bus.rename(uid, f"Name {step}"))
            expected.append(ok(bus.user_renamed(uid, f"Name {step}")))
            bodies.append(bus.find_by_email(emails[uid].upper()))
            expected.append(result(user(uid, model.names[uid])))
        elif kind == "email":
            old, emails[uid] = emails[uid], f"new{step}@example.com"
            bodies += [bus.change_email(uid, emails[uid]), bus.find_by_email(old),
                       bus.find_by_email(emails[uid])]
            expected += [ok(bus.email_changed(uid)), result(None),
                         result(user(uid, model.names[uid]))]
        else:
            model.deactivate(uid)
            # A deactivated user keeps their email, but is found no more.
            bodies += [bus.deactivate(uid), bus.find_by_email(emails[uid])]
            expected += [ok(bus.user_deactivated(uid)), result(None)]
        page = paging(rng, model)
        bodies.append(bus.list_users(**page))
        expected.append(result(model.page(**page)))
    expect_all(s.pipeline(bodies), expected)


def test_envelope_list_users_in_a_mix_of_creates_renames_and_deletes(node_factory) -> None:
    """Envelope dialect: the client names the ids, so one burst holds everything."""
    s = Session(node_factory("--no-sample-data"))
    rng = random.Random(34)
    model, bodies, expected = Model(), [], []
    for i in range(N):
        uid = f"acct-{i}"
        model.create(uid, f"Account {i}")
        bodies.append(envelope.create(uid, f"Account {i}"))
        expected.append(envelope.created(uid))
        if i % 4 == 3:
            other = rng.choice(model.active)
            if rng.random() < 0.5:
                model.rename(other, f"Renamed {i}")
                bodies.append(envelope.rename(other, f"Renamed {i}"))
                expected.append(envelope.renamed(other))
            else:
                model.deactivate(other)
                bodies.append(envelope.delete(other))
                expected.append(envelope.deleted(other))
        page = paging(rng, model)
        bodies.append(envelope.list_users(**page))
        expected.append(result(model.page(**page)))
    expect_all(s.pipeline(bodies), expected)


def test_a_flood_of_costly_queries_never_silences_the_read_side(node_factory) -> None:
    """Each GetUserAtTime on a user with 20,000 events folds all of them (milliseconds), and
    a read side takes up to 8,192 queries per round: answered in one go, a round would last
    seconds, the read side would send no status meanwhile and be dropped as dead. Answered
    a slice of a round's time at a time, every reply comes, from the same read side. (The
    deadline is raised so that only the read side's silence could fail a query.)"""
    node = node_factory("--no-sample-data", "--timeout", "120")
    s = Session(node)
    renames = 20_000
    made = s.pipeline([envelope.create("long", "N")] +
                      [envelope.rename("long", f"N{i}") for i in range(renames)])
    assert made[-1].body.get("success") is True, made[-1].line
    [reader] = processes(node, "read")
    asked = "2100-01-01T00:00:00Z"
    replies = s.pipeline([envelope.at_time("long", asked) for _ in range(1_000)])
    expect_all(replies, [result(envelope.user_at("long", f"N{renames - 1}", asked))] * 1_000)
    assert list(processes(node, "read")) == [reader]  # never dropped nor restarted
