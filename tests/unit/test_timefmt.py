"""The canonical timestamp form: fixed width, so text order is time order."""
import pytest

from common.timefmt import canonical


@pytest.mark.parametrize("given, want", [
    ("2024-01-10T00:00:00Z", "2024-01-10T00:00:00.000000Z"),
    ("2024-01-10T02:00:00+02:00", "2024-01-10T00:00:00.000000Z"),
    ("2024-01-10", "2024-01-10T00:00:00.000000Z"),
    ("0999-01-01T00:00:00", "0999-01-01T00:00:00.000000Z"),
    ("0001-01-01T00:00:00.5", "0001-01-01T00:00:00.500000Z"),
])
def test_canonical_form(given, want):
    assert canonical(given) == want


def test_years_before_1000_sort_before_later_ones():
    assert canonical("0999-12-31T23:59:59") < canonical("2024-01-01T00:00:00")


@pytest.mark.parametrize("given", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                   "not a time", "", "   "])
def test_out_of_range_or_unparsable_is_a_value_error(given):
    with pytest.raises(ValueError):
        canonical(given)
