"""The operations page's load-time quantiles, read from a histogram's buckets as Prometheus reads them."""
import math

import pytest

from api.ui.operations import quantile

BUCKETS = [(0.01, 10.0), (0.1, 60.0), (1.0, 100.0), (math.inf, 100.0)]


@pytest.mark.parametrize(("q", "expected"), [(0.05, 0.005), (0.1, 0.01), (0.35, 0.055), (0.8, 0.55), (1.0, 1.0)])
def test_a_quantile_interpolates_within_the_bucket_it_falls_in(q, expected):
    assert quantile(q, BUCKETS) == pytest.approx(expected)


def test_past_the_largest_finite_bucket_its_bound_is_all_that_is_known():
    assert quantile(0.99, [(0.5, 1.0), (math.inf, 10.0)]) == 0.5


def test_an_empty_histogram_has_no_quantile():
    assert quantile(0.5, []) is None
    assert quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
