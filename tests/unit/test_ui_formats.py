"""How the dashboard writes a duration: in the units a person reads, never a float's digits."""
import pytest

from api.ui.formats import duration


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.0421, "42 ms"), (0.9996, "1.0 s"), (7.38701, "7.4 s"), (59.94, "59.9 s"), (59.96, "1 min"), (192.4, "3 min 12 s"),
    (3600, "1 h"), (7500, "2 h 5 min"), (3599.9, "1 h"), (86400, "1 d"), (93_600, "1 d 2 h"), (40 * 86400 + 5, "40 d"),
])
def test_a_duration_is_written_in_the_two_largest_units_it_spans(seconds, shown):
    assert duration(seconds) == shown
