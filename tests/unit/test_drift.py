"""Drift statistics: the same distribution does not drift, a shifted or reshaped one does, by PSI
and by a test (KS on raw values, χ² on bin counts); new categories count as drift."""
import numpy as np
import pytest
from scipy import stats

from registry.monitoring.drift import compare, population_stability, profile

RNG = np.random.default_rng(0)
REFERENCE = RNG.normal(size=5000).tolist()


@pytest.mark.parametrize("keep_sample, test", [(True, "ks"), (False, "chi2")])
def test_a_sample_of_the_same_distribution_does_not_drift(keep_sample, test):
    reference = profile(REFERENCE, keep_sample=keep_sample)
    drift = compare(reference, RNG.normal(size=2000).tolist())
    assert drift.test == test and not drift.drifted
    assert drift.psi < 0.05 and drift.p_value > 0.01


@pytest.mark.parametrize("keep_sample", [True, False])
@pytest.mark.parametrize("recent", [RNG.normal(0.5, 1, 2000), RNG.normal(0, 2, 2000)], ids=["shifted", "wider"])
def test_a_shifted_or_wider_distribution_drifts(keep_sample, recent):
    drift = compare(profile(REFERENCE, keep_sample=keep_sample), recent.tolist())
    assert drift.drifted and drift.p_value < 1e-6 and drift.psi > 0.1


def test_the_deciles_make_ten_equal_bins_and_the_ks_test_is_scipys():
    reference = profile(REFERENCE, keep_sample=True)
    assert len(reference.counts) == 10 and all(abs(c - 500) <= 1 for c in reference.counts)
    recent = RNG.normal(0.1, 1, 300).tolist()
    assert compare(reference, recent).p_value == pytest.approx(stats.ks_2samp(REFERENCE, recent).pvalue)


def test_categories_drift_when_their_shares_move_or_new_ones_come():
    reference = profile(["red"] * 600 + ["green"] * 300 + ["blue"] * 100)
    assert reference.kind == "categorical" and reference.values == ["red", "green", "blue"]
    assert not compare(reference, ["red"] * 61 + ["green"] * 29 + ["blue"] * 10).drifted
    moved = compare(reference, ["red"] * 20 + ["green"] * 30 + ["blue"] * 50)
    assert moved.drifted and moved.test == "chi2" and moved.p_value < 1e-6
    new = compare(reference, ["red"] * 60 + ["green"] * 30 + ["purple"] * 10)
    assert new.drifted and new.p_value == 0.0


def test_psi_is_zero_for_equal_shares_and_grows_with_the_move():
    same = population_stability(np.array([50.0, 50.0]), np.array([500.0, 500.0]))
    small = population_stability(np.array([50.0, 50.0]), np.array([55.0, 45.0]))
    large = population_stability(np.array([50.0, 50.0]), np.array([90.0, 10.0]))
    assert same == 0.0 and 0 < small < 0.05 < large
    assert small == pytest.approx(0.05 * np.log(0.55 / 0.5) - 0.05 * np.log(0.45 / 0.5))


def test_each_bin_is_named_and_shows_both_shares():
    reference = profile([1.0, 2.0, 3.0, 4.0] * 25)
    drift = compare(reference, [4.0] * 10)
    assert len(drift.bins) == len(reference.edges) + 1 == len(drift.reference_shares) == len(drift.recent_shares)
    assert drift.bins[0].startswith("< ") and drift.bins[-1].startswith("≥ ") and " – " in drift.bins[1]
    assert sum(drift.reference_shares) == pytest.approx(1.0) and drift.recent_shares[-1] == 1.0

    colours = compare(profile(["red", "blue"] * 10), ["red", "green", "green", "blue"])
    assert colours.bins == ["red", "blue", "new values"]
    assert colours.reference_shares == [0.5, 0.5, 0.0] and colours.recent_shares == [0.25, 0.25, 0.5]


def test_a_profile_keeps_a_bounded_sample_spread_over_the_values_and_round_trips():
    values = np.random.default_rng(0).normal(size=5000).tolist()
    kept = profile(values, keep_sample=True, max_sample=200)
    assert len(kept.sample) == 200 and kept.sample == sorted(kept.sample)
    assert stats.ks_2samp(kept.sample, values).pvalue > 0.5  # the sample stands for the whole
    assert type(kept).from_dict(kept.to_dict()) == kept
