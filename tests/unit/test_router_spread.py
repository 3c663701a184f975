"""The rule that spreads commands over write sides by stream (router.backends.owner) and
the router's reading of a command's stream (router.loop.command_stream)."""
from __future__ import annotations

from collections import Counter

import pytest

from router.backends import Member, owner, stable_hash
from router.loop import command_stream

IDS = [f"stream-{i}" for i in range(20_000)]


def members(*numbers: int) -> list[Member]:
    """Write sides with identities like ZeroMQ's own (a zero byte, then four)."""
    return [Member(b"\x00" + n.to_bytes(4, "big"), "write") for n in numbers]


def owners(streams: list[str], pool: list[Member]) -> dict[str, bytes]:
    return {s: owner(s, pool).identity for s in streams}


def test_the_hash_is_the_same_in_every_process():
    """Pinned values: a hash salted per process (Python's hash() of a str) could not match
    them from one run to the next, and a router restarted with another salt would move
    every stream."""
    assert stable_hash(b"user-123") == 548455814961252913
    assert stable_hash("é".encode()) == 3394012004367669963
    pool = members(1, 2, 3)
    assert [owner(f"s-{i}", pool).identity[-1] for i in range(12)] == \
        [1, 3, 1, 3, 2, 2, 2, 2, 1, 2, 1, 1]


def test_the_owner_depends_on_the_members_not_on_their_order():
    pool = members(7, 3, 11)
    assert owners(IDS[:2000], pool) == owners(IDS[:2000], list(reversed(pool)))


@pytest.mark.parametrize("n", [2, 3, 5])
def test_streams_are_spread_evenly(n):
    pool = members(*range(1, n + 1))
    shares = Counter(owners(IDS, pool).values())
    assert len(shares) == n
    expected = len(IDS) / n
    assert all(abs(count - expected) < 0.05 * expected for count in shares.values()), shares


@pytest.mark.parametrize("n", [2, 3, 4])
def test_a_lost_write_side_takes_only_its_own_streams_and_they_spread_evenly(n):
    pool = members(*range(1, n + 1))
    before = owners(IDS, pool)
    lost = pool[0]
    after = owners(IDS, pool[1:])
    moved = {s for s in IDS if before[s] != after[s]}
    assert moved == {s for s in IDS if before[s] == lost.identity}
    if n > 2:  # over the others, evenly
        shares = Counter(after[s] for s in moved)
        expected = len(moved) / (n - 1)
        assert all(abs(c - expected) < 0.1 * expected for c in shares.values()), shares


def test_a_new_write_side_takes_streams_from_each_and_moves_no_other():
    pool = members(1, 2, 3)
    before = owners(IDS, pool)
    newcomer = members(4)[0]
    after = owners(IDS, pool + [newcomer])
    moved = [s for s in IDS if before[s] != after[s]]
    assert all(after[s] == newcomer.identity for s in moved)
    assert abs(len(moved) - len(IDS) / 4) < 0.05 * len(IDS) / 4


def test_one_write_side_owns_everything():
    pool = members(9)
    assert set(owners(IDS[:100], pool).values()) == {pool[0].identity}


def test_a_stream_id_that_is_not_valid_utf8_still_has_an_owner():
    # JSON lets a client send a lone surrogate ("\ud800"), which strict UTF-8 refuses.
    assert owner("\ud800", members(1, 2)).identity in {m.identity for m in members(1, 2)}


@pytest.mark.parametrize("args,stream", [
    ({"id": "u-1", "name": "A"}, "u-1"),         # every command but bus CreateUser
    ({"name": "A", "email": "a@b.io"}, None),    # bus CreateUser: the write side makes the id
    ({"id": ""}, None),
    ({"id": 7}, None),                           # not a stream id: the write side refuses it
    (None, None),
    ("text", None),
    ([{"id": "u"}], None),
])
def test_the_stream_of_a_command_is_its_payload_id(args, stream):
    assert command_stream(args) == stream
