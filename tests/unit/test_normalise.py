"""The Normaliser of the differential tests (tests/support/normalise.py): it hides what a node
generates, and nothing else, so that a real difference still shows."""
from datetime import datetime, timezone

from tests.support.normalise import Normaliser, normalised


def test_normalising_keeps_differences_visible():
    """The normaliser maps ids by order of appearance, so swapped ids still differ."""
    a, b = "11111111-2222-4333-8444-555555555555", "66666666-7777-4888-9999-aaaaaaaaaaaa"
    first, second = Normaliser(), Normaliser()
    assert [first(a), first(b), first(a)] == ["<id1>", "<id2>", "<id1>"]
    assert [second(b), second(a)] == ["<id1>", "<id2>"]
    assert Normaliser()(f"{a} {b}") != Normaliser()(f"{a} {a}")
    assert Normaliser()("2024-01-10T00:00:00.000000Z") == "2024-01-10T00:00:00.000000Z"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert Normaliser()(now) == "<now>"


def test_one_run_numbers_its_ids_across_all_its_lines():
    a, b = "11111111-2222-4333-8444-555555555555", "66666666-7777-4888-9999-aaaaaaaaaaaa"
    assert normalised([a, b, a]) == ["<id1>", "<id2>", "<id1>"]
    assert normalised([a, b]) != normalised([a, a])


def test_a_template_is_filled_with_the_ids_seen_so_far():
    normalise = Normaliser()
    normalise('{"id": "66666666-7777-4888-9999-aaaaaaaaaaaa"}')
    assert normalise.fill('{"user_id": "<id1>"}') == \
        '{"user_id": "66666666-7777-4888-9999-aaaaaaaaaaaa"}'
