"""The merging of live streams (common.subscription.Sequencer), on its own: events applied
strictly in position order and each once, whatever order and how many times they arrive
in, a gap held for the live streams first and then filled from the store, never skipped.

The clock is a fake one the tests move, so "the hold ran out" is a step of the test, not
a wait."""
from __future__ import annotations

import random
import pytest

from common import checksum, subscription
from common.catchup_sources import DatabaseSource, reads_the_database
from common.subscription import RETRY_AFTER, Sequencer


def event(position: int) -> dict:
    return {"position": position, "context": "c", "stream_id": f"s{position % 3}",
            "version": position, "type": "T", "data": {}, "recorded_at": "",
            "event_id": f"e{position}"}


STORE = [event(p) for p in range(1, 201)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sequencer(hold_for: float = 0.05, max_held: int = 1000, position: int = 0
              ) -> tuple[Sequencer, list[int], Clock]:
    applied: list[int] = []
    clock = Clock()
    seq = Sequencer(lambda e: applied.append(e["position"]), position, hold_for, max_held,
                    clock=clock)
    return seq, applied, clock


def replay(seq: Sequencer, store: list[dict] = STORE, upto: int | None = None) -> None:
    """What Subscription.catch_up does once the gap is due, from a store in a list."""
    seq.healing()
    last = len(store) if upto is None else upto
    seq.heard_head(last)
    for e in store[seq.position:last]:
        seq.replayed(e)
    seq.caught_up(True)


# ---- in order, out of order, twice ---------------------------------------------------------

def test_in_order_events_are_applied_at_once_and_nothing_is_held():
    seq, applied, _ = sequencer()
    for p in range(1, 6):
        seq.offer(event(p))
    assert applied == [1, 2, 3, 4, 5]
    assert (seq.position, seq.head, seq.held, seq.due_in()) == (5, 5, 0, None)
    assert seq.counters["held"] == 0 and seq.counters["received"] == 5


def test_an_event_ahead_waits_for_the_one_before_it_from_the_other_writer():
    """Writer B commits 2 after A commits 1, but B's publish arrives first."""
    seq, applied, _ = sequencer()
    seq.offer(event(2))
    assert applied == [] and seq.held == 1 and seq.head == 2
    assert not seq.due()  # the hold has not run out: 1 may still come live
    seq.offer(event(1))
    assert applied == [1, 2] and seq.held == 0 and seq.due_in() is None
    assert seq.counters["held"] == 1 and seq.counters["gaps"] == 0


def test_a_run_of_held_events_is_applied_as_soon_as_the_gap_fills():
    seq, applied, _ = sequencer()
    for p in (5, 3, 4, 2, 7):
        seq.offer(event(p))
    assert applied == []
    seq.offer(event(1))
    assert applied == [1, 2, 3, 4, 5]
    assert seq.held == 1 and seq.position == 5 and seq.head == 7
    seq.offer(event(6))
    assert applied == [1, 2, 3, 4, 5, 6, 7]


def test_duplicates_are_dropped_whether_applied_or_held():
    seq, applied, _ = sequencer()
    for p in (1, 1, 3, 3, 2, 2, 3):
        seq.offer(event(p))
    assert applied == [1, 2, 3]
    assert seq.counters["duplicates"] == 4 and seq.counters["received"] == 7


@pytest.mark.parametrize("seed", range(40))
def test_two_writers_interleaved_at_random_apply_every_position_once_in_order(seed):
    """Two writers take positions in turns of random length and publish each after a random
    delay; some publishes are lost and some sent twice. Whatever arrives, and whenever a
    gap is filled from the store, the applied positions are exactly 1..N."""
    rng = random.Random(seed)
    seq, applied, clock = sequencer(hold_for=0.05, max_held=rng.choice([3, 50, 1000]))
    committed: list[float] = []  # when each position was committed, in position order
    arrivals: list[tuple[float, int]] = []
    t = 0.0
    for p in range(1, len(STORE) + 1):
        t += rng.random() * 0.002
        committed.append(t)
        if rng.random() < 0.05:
            continue  # lost
        delay = rng.random() * (0.2 if rng.random() < 0.1 else 0.01)
        arrivals.append((t + delay, p))
        if rng.random() < 0.05:
            arrivals.append((t + delay + rng.random() * 0.05, p))  # sent twice
    arrivals.sort()
    start = clock.now
    for at, p in arrivals:
        clock.now = start + at
        if seq.due():
            # The store as it is then: every position committed so far (a prefix, as
            # commits end in position order).
            replay(seq, upto=sum(1 for c in committed if c <= at))
        seq.offer(event(p))
    seq.heard_head(len(STORE))  # the writers' heartbeats
    clock.now += 1.0
    if seq.gap:  # a lost tail, or a gap that opened with the last arrivals
        assert seq.due()
        replay(seq)
    assert applied == list(range(1, len(STORE) + 1))
    assert seq.held == 0 and seq.due_in() is None
    # The run was worth it: events arrived ahead and waited, and gaps were filled from the
    # store.
    assert seq.counters["held"] > 0 and seq.counters["gaps"] > 0, seq.counters


# ---- gaps the live streams do not fill --------------------------------------------------------

def test_a_gap_not_filled_within_the_hold_is_due_and_filled_from_the_store():
    seq, applied, clock = sequencer(hold_for=0.05)
    seq.offer(event(1))
    seq.offer(event(3))
    assert seq.due_in() == pytest.approx(0.05)
    clock.now += 0.049
    assert not seq.due()
    clock.now += 0.002
    assert seq.due() and seq.due_in() == 0.0
    replay(seq, upto=3)
    assert applied == [1, 2, 3]
    assert seq.counters["gaps"] == 1 and seq.counters["caught_up_events"] == 1
    assert seq.due_in() is None


def test_with_one_publisher_a_gap_is_due_at_once():
    """One write side publishes in order: a gap there is a lost message, not a late one."""
    seq, applied, _ = sequencer(hold_for=0.0)
    seq.offer(event(1))
    seq.offer(event(3))
    assert seq.due()


def test_held_events_past_a_gap_are_never_applied_before_it_fills():
    seq, applied, clock = sequencer(hold_for=0.05)
    for p in range(3, 10):
        seq.offer(event(p))
    clock.now += 10.0  # however long it waits
    assert applied == [] and seq.due()


def test_a_full_buffer_makes_the_gap_due_and_keeps_nothing_more():
    seq, applied, clock = sequencer(hold_for=60.0, max_held=3)
    for p in (2, 3, 4):
        seq.offer(event(p))
    assert seq.due()  # full: no need to wait out the hold
    seq.offer(event(5))  # not kept: the store has it
    assert seq.held == 3 and seq.counters["held_dropped"] == 1 and seq.head == 5
    seq.offer(event(1))
    assert applied == [1, 2, 3, 4]  # 5 was not kept, so it is not applied either...
    assert seq.gap and seq.due()    # ...and the gap before it is due at once
    replay(seq, upto=5)
    assert applied == [1, 2, 3, 4, 5]


def test_a_head_ahead_with_no_event_is_a_gap_too_but_not_counted_as_one():
    """A lost tail: only a heartbeat's head reveals it."""
    seq, applied, clock = sequencer(hold_for=0.05)
    seq.offer(event(1))
    seq.heard_head(3)
    assert not seq.due()
    clock.now += 0.06
    assert seq.due()
    replay(seq, upto=3)
    assert applied == [1, 2, 3]
    assert seq.counters["gaps"] == 0 and seq.counters["caught_up_events"] == 2


def test_heads_from_several_writers_keep_the_highest():
    seq, _, _ = sequencer()
    seq.heard_head(7)
    seq.heard_head(4)  # a writer that is behind the other one
    assert seq.head == 7


def test_a_catch_up_that_got_no_answer_is_not_retried_before_a_pause():
    seq, applied, clock = sequencer(hold_for=0.0, max_held=2)
    seq.offer(event(2))
    assert seq.due()
    seq.caught_up(False)  # the source did not answer
    assert seq.held == 1
    for p in (3, 4, 5):  # more arrive meanwhile, even more than the buffer holds
        seq.offer(event(p))
    assert not seq.due() and seq.due_in() == pytest.approx(RETRY_AFTER)
    clock.now += RETRY_AFTER
    assert seq.due()
    replay(seq, upto=5)
    assert applied == [1, 2, 3, 4, 5]


def test_store_events_already_applied_live_during_a_catch_up_are_not_applied_again():
    seq, applied, _ = sequencer(hold_for=0.0)
    seq.offer(event(1))
    seq.offer(event(4))  # held; 2 and 3 are lost
    seq.healing()
    seq.replayed(event(2))
    seq.replayed(event(3))  # and then 4 from the held ones
    seq.replayed(event(4))  # the store's copy: applied already
    seq.caught_up(True)
    assert applied == [1, 2, 3, 4]
    assert seq.counters["caught_up_events"] == 2


def test_start_at_drops_what_is_held_at_or_below_it():
    seq, applied, _ = sequencer()
    for p in (3, 5, 9):
        seq.offer(event(p))
    seq.start_at(5)  # a snapshot at 5 taken up
    assert seq.held == 1 and seq.position == 5 and seq.head == 9
    for p in (6, 7, 8):
        seq.offer(event(p))
    assert applied == [6, 7, 8, 9]


def test_start_at_applies_held_events_that_follow_on_from_it():
    seq, applied, _ = sequencer()
    for p in (4, 5, 8):
        seq.offer(event(p))
    seq.start_at(3)
    assert applied == [4, 5] and seq.held == 1 and seq.gap
    seq.offer(event(6))
    seq.offer(event(7))
    assert applied == [4, 5, 6, 7, 8] and not seq.gap


def test_start_at_with_nothing_held_sets_the_head_where_it_is_told():
    seq, _, _ = sequencer()
    seq.heard_head(50)
    seq.start_at(40)  # a tap that starts at the store's head, told 40
    assert (seq.position, seq.head, seq.due_in()) == (40, 40, None)


# ---- the pieces beside it ------------------------------------------------------------------------

def test_the_checksum_as_bytes_is_the_integer_checksum_big_endian():
    from write_side.store import shared

    body = b"\x85\xa8position\x01"
    assert len(checksum.checksum_bytes(body)) == checksum.SIZE
    assert int.from_bytes(checksum.checksum_bytes(body), "big") == shared.checksum(body)
    assert checksum.checksum(body) == shared.checksum(body)
    assert checksum.checksum_bytes(body) != checksum.checksum_bytes(body + b"\x00")


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:secret@db.example:5432/events?password=secret&sslmode=require",
     "the database postgresql://u@db.example:5432/events"),
    ("postgresql://u:secret@h1:5432,h2:5433/db", "the database postgresql://u@h1:5432,h2:5433/db"),
    ("postgres:///db?host=/tmp&password=secret", "the database postgres:///db"),
])
def test_a_database_source_names_its_database_without_the_password(url: str, shown: str):
    pytest.importorskip("psycopg")
    source = DatabaseSource(url)  # connects only when first asked
    try:
        assert source.where == shown
    finally:
        source.close()


@pytest.mark.parametrize("store, database", [
    ("", False), ("sqlite:///x/events.sqlite3", False), ("sqlite://", False),
    ("postgresql://u@h/db", True), ("postgres://u@h/db", True)])
def test_subscribers_read_the_database_itself_only_on_a_shared_store(store: str, database: bool):
    assert reads_the_database(store) is database


def test_the_default_hold_depends_on_how_many_writers_publish():
    import zmq

    from common.subscription import Subscription

    ctx = zmq.Context()
    try:
        for endpoints, hold in (("inproc://a", 0.0), ("inproc://a,inproc://b",
                                                      subscription.HOLD_FOR)):
            sub = Subscription(ctx, endpoints, "inproc://c", lambda e: None)
            try:
                assert sub._seq.hold_for == hold
            finally:
                sub.close()
    finally:
        ctx.term()

