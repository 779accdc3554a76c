"""The live quality's 95 % interval never ends short of its own value: a perfect classifier's accuracy
1.0 has ``ci_high`` 1.0, not 0.9999999999999998 (issue 68, item 8)."""
from registry.monitoring.quality import wilson


def test_every_proportions_interval_holds_it_within_zero_and_one():
    outside = [(right, n) for n in range(1, 400) for right in range(n + 1)
               if not 0.0 <= wilson(right, n)[0] <= right / n <= wilson(right, n)[1] <= 1.0]
    assert outside == []


def test_all_right_ends_at_one_and_all_wrong_starts_at_zero():
    assert wilson(10, 10)[1] == 1.0 and wilson(25, 25)[1] == 1.0
    assert wilson(0, 3)[0] == 0.0 and wilson(0, 7)[0] == 0.0
