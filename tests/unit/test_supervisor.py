"""The restart rule shared by the launcher's supervisor and common.keepalive (common.backoff):
a backoff between restarts, and no restart after a crash loop. Times are made up, so each
case says exactly when each death happened. (The real thing, with processes that crash,
is in tests/e2e/test_lifecycle.py.)"""
from __future__ import annotations

import signal

import pytest

from common import backoff, keepalive
from common.backoff import CRASH_LIMIT, CRASH_WINDOW, Restarts


def deaths(policy: Restarts, times: list[float], ran_for: float = 0.0) -> list[float | None]:
    """The policy's answer to a death at each of these times."""
    return [policy.died(t, ran_for) for t in times]


def test_the_limit_is_five_deaths_within_a_minute():
    # The numbers of issue 12 item 5; the messages and README quote them.
    assert (CRASH_LIMIT, CRASH_WINDOW) == (5, 60.0)


def test_the_fifth_death_within_the_window_is_not_restarted():
    answers = deaths(Restarts(), [0.0, 1.0, 2.0, 3.0, 4.0])
    assert answers == [0.05, 0.1, 0.2, 0.4, None]


def test_deaths_spread_wider_than_the_window_are_restarted_for_ever():
    # Every 15.1 s: never 5 within 60 s, however long it goes on.
    answers = deaths(Restarts(), [15.1 * i for i in range(40)])
    assert None not in answers


def test_a_death_leaves_the_window_exactly_one_window_later():
    policy = Restarts()
    assert None not in deaths(policy, [0.0, 10.0, 20.0, 30.0])
    # The death at 0.0 is 60 s old at 60.0: out of the window, so this is 4 within it.
    assert policy.died(60.0, 0.0) is not None
    # 10.0 is still within 60 s of 69.9: five within the window.
    assert policy.died(69.9, 0.0) is None


def test_the_backoff_still_applies_below_the_limit():
    # A process that ran well before dying starts its backoff over (STABLE_AFTER).
    policy = Restarts()
    assert policy.died(0.0, 0.0) == 0.05
    assert policy.died(1.0, 0.0) == 0.1
    assert policy.died(100.0, backoff.STABLE_AFTER + 1) == 0.05


@pytest.mark.parametrize("limit,window", [(2, 1.0), (3, 10.0)])
def test_limit_and_window_can_be_chosen(limit: int, window: float):
    policy = Restarts(limit=limit, window=window)
    answers = deaths(policy, [i * window / limit for i in range(limit)])
    assert None not in answers[:-1] and answers[-1] is None


def test_the_reason_names_the_process_the_count_and_the_window():
    assert Restarts().reason("write side") == "write side crashed 5 times within 60 s; see stderr"


@pytest.mark.parametrize("status,expected", [
    (0, 0),                     # stopped cleanly
    (-signal.SIGTERM, 0),       # killed by the SIGTERM passed on, before its own handler
    (-signal.SIGINT, 0),
    (1, 1),                     # failed while stopping: not a clean stop
    (78, 78),
    (-signal.SIGKILL, 1),       # killed by someone else: a failure, as a positive status
])
def test_keepalive_status_once_asked_to_stop(status: int, expected: int):
    assert keepalive._stopped_status(status) == expected
