"""The live quality's 95 % interval never ends short of its own value: a perfect classifier's accuracy
1.0 has ``ci_high`` 1.0, not 0.9999999999999998 (issue 68, item 8); and it is SciPy's Wilson interval, the
one a rollout's gates use too (issue 69, item 8)."""
import pytest

from registry.intervals import wilson


def test_every_proportions_interval_holds_it_within_zero_and_one():
    outside = [(right, n) for n in range(1, 400) for right in range(n + 1)
               if not 0.0 <= wilson(right, n)[0] <= right / n <= wilson(right, n)[1] <= 1.0]
    assert outside == []


def test_all_right_ends_at_one_and_all_wrong_starts_at_zero():
    assert wilson(10, 10)[1] == 1.0 and wilson(25, 25)[1] == 1.0
    assert wilson(0, 3)[0] == 0.0 and wilson(0, 7)[0] == 0.0


def test_the_interval_is_scipys_wilson_interval():
    from scipy.stats import binomtest

    from registry.intervals import Z_95, z_of

    assert Z_95 == z_of(0.05)
    for n in range(1, 40):
        for right in range(n + 1):
            for confidence in (0.95, 1 - 2 * 0.05 / 12):  # the live quality's, and a rollout gate's one-sided look
                expected = binomtest(right, n).proportion_ci(confidence_level=confidence, method="wilson")
                found = wilson(right, n, z_of(1 - confidence))
                assert found == pytest.approx((expected.low, expected.high), abs=1e-12), (right, n, confidence)
