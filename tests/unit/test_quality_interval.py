"""The live quality's 95 % interval never ends short of its own value: a perfect classifier's accuracy
1.0 has ``ci_high`` 1.0, not 0.9999999999999998 (issue 68, item 8); and it is SciPy's Wilson interval, the
one a rollout's gates use too (issue 69, item 8)."""
import pytest

from registry.intervals import wilson


def test_every_proportions_interval_holds_it_within_zero_and_one():
    counts = [(right, n) for n in (*range(1, 60), 97, 263, 399) for right in range(n + 1)]
    outside = [(right, n) for right, n in counts if not _holds(right / n, wilson(right, n))]
    assert outside == []


def _holds(proportion: float, interval: tuple[float, float]) -> bool:
    low, high = interval
    return 0.0 <= low <= proportion <= high <= 1.0


def test_all_right_ends_at_one_and_all_wrong_starts_at_zero():
    assert wilson(10, 10)[1] == 1.0 and wilson(25, 25)[1] == 1.0
    assert wilson(0, 3)[0] == 0.0 and wilson(0, 7)[0] == 0.0


@pytest.mark.parametrize("right, n, confidence, expected", [
    (81, 263, 0.95, (0.2553, 0.3662)),  # Newcombe (1998), Statistics in Medicine 17, table I, method 3
    (15, 148, 0.95, (0.0624, 0.1605)),
    (0, 20, 0.95, (0.0, 0.1611)),
    (1, 29, 0.95, (0.0061, 0.1718)),
])
def test_the_interval_is_wilsons_as_published(right, n, confidence, expected):
    assert wilson(right, n, confidence) == pytest.approx(expected, abs=5e-5)


def test_a_proportion_of_no_trial_is_anywhere():
    assert wilson(0, 0) == (0.0, 1.0)


def test_the_normal_quantile_written_out_is_scipys():
    from registry.intervals import Z_95, z_of

    assert Z_95 == z_of(0.05)
