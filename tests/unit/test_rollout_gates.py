"""The rollout gates' statistics: each decides what it should on clear cases, waits on too little,
matches scipy where scipy has the test, and the look schedule keeps false aborts of identical arms
within the level."""
import numpy as np
import pytest
from scipy import stats

from bench.rollout_gates import Arm, simulate
from registry.autopilot import gates
from registry.serving.figures import LATENCY_BUCKETS_MS


def buckets(rng, median_ms: float, n: int) -> list[int]:
    latencies = rng.lognormal(np.log(median_ms), 0.5, n)
    return np.bincount(np.searchsorted(LATENCY_BUCKETS_MS, latencies), minlength=len(LATENCY_BUCKETS_MS) + 1).tolist()


def test_the_error_rate_gate_passes_a_canary_no_worse_and_fails_one_clearly_worse():
    same = gates.error_rate((20, 2000), (100, 10000), max_increase=0.01, min_requests=500)
    worse = gates.error_rate((100, 2000), (100, 10000), max_increase=0.01, min_requests=500)
    early = gates.error_rate((1, 50), (2, 200), max_increase=0.01, min_requests=500)
    assert (same.state, worse.state, early.state) == (gates.PASS, gates.FAIL, gates.WAITING)
    assert worse.value == pytest.approx(0.04) and "above the allowed" in worse.detail
    assert early.needed > early.seen and early.needed >= 500


@pytest.mark.parametrize("first, second, expected", [
    ((56, 70), (48, 80), (0.0524, 0.3339)),  # Newcombe (1998), Statistics in Medicine 17, table II, method 10
    ((9, 10), (3, 10), (0.1705, 0.8090)),
])
def test_newcombes_interval_matches_his_published_examples(first, second, expected):
    assert gates.difference_interval(first, second, 0.95) == pytest.approx(expected, abs=5e-5)


def test_the_latency_gate_fails_a_canary_twice_as_slow_and_passes_an_equal_one():
    rng = np.random.default_rng(0)
    primary = {"1": buckets(rng, 4.0, 5000)}
    slow = gates.latency({"1": buckets(rng, 8.0, 1000)}, primary, max_p99_ratio=1.5, min_requests=500)
    equal = gates.latency({"1": buckets(rng, 4.0, 1000)}, primary, max_p99_ratio=1.5, min_requests=500)
    assert slow.state == gates.FAIL and slow.value > 1.5
    assert equal.state == gates.PASS


def test_the_latency_gate_compares_batches_of_one_size_with_batches_of_the_same_size_only():
    rng = np.random.default_rng(4)
    # The canary got large batches (slow, as on any version) beside single rows as fast as the primary's.
    canary = {"1": buckets(rng, 4.0, 1000), "101-1000": buckets(rng, 400.0, 1000)}
    primary = {"1": buckets(rng, 4.0, 5000)}
    verdict = gates.latency(canary, primary, max_p99_ratio=1.5, min_requests=500)
    assert verdict.state == gates.PASS and set(verdict.figures["by_rows"]) == {"1"}
    slower = gates.latency({"1": buckets(rng, 8.0, 1000), "2-10": buckets(rng, 4.0, 1000)},
                           {"1": buckets(rng, 4.0, 5000), "2-10": buckets(rng, 4.0, 5000)}, max_p99_ratio=1.5,
                           min_requests=500)
    assert slower.state == gates.FAIL and "batches of 1 rows" in slower.detail
    assert gates.latency({"1001+": buckets(rng, 4.0, 1000)}, primary, max_p99_ratio=1.5, min_requests=500).state == gates.WAITING


def test_the_key_ratio_check_halts_on_keys_chosen_to_land_on_one_arm_and_allows_for_the_sketchs_error():
    assert gates.key_ratio((250, 0.0), (750, 0.0), 25).state == gates.PASS
    assert gates.key_ratio((1250, 10.0), (750, 8.0), 25).state == gates.FAIL  # keys picked to land on the canary
    assert gates.key_ratio((10, 0.0), (40, 0.0), 25).state == gates.WAITING
    # 200,000 keys: an estimate 1.6 % off on the primary alone is no mismatch once its error is allowed for
    assert gates.key_ratio((10_000, 160.0), (193_000, 3100.0), 5).state == gates.PASS


def test_mann_whitney_from_bucket_counts_is_scipys_on_the_samples():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 12, 800), rng.integers(1, 12, 600)
    expected = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic").pvalue
    counted = gates.slower_p(np.bincount(x, minlength=13).tolist(), np.bincount(y, minlength=13).tolist())
    assert counted == pytest.approx(expected, rel=1e-9)


def test_the_agreement_gates_judge_the_mirrored_rows():
    assert gates.agreement(970, 1000, minimum=0.9, min_rows=100).state == gates.PASS
    assert gates.agreement(700, 1000, minimum=0.9, min_rows=100).state == gates.FAIL
    assert gates.agreement(9, 10, minimum=0.9, min_rows=100).state == gates.WAITING
    rng = np.random.default_rng(1)
    close, far = rng.exponential(0.1, 500), rng.exponential(2.0, 500)
    assert gates.mean_difference(close.sum(), (close ** 2).sum(), 500, maximum=0.5, min_rows=50).state == gates.PASS
    assert gates.mean_difference(far.sum(), (far ** 2).sum(), 500, maximum=0.5, min_rows=50).state == gates.FAIL


def test_the_quality_gate_waits_for_labels_and_compares_the_arms():
    assert gates.quality((0.9, 20), (0.9, 500), metric="accuracy", max_drop=0.02).state == gates.WAITING
    assert gates.quality((0.80, 2000), (0.90, 2000), metric="accuracy", max_drop=0.02).state == gates.FAIL
    assert gates.quality((0.90, 20000), (0.90, 20000), metric="accuracy", max_drop=0.02).state == gates.PASS
    worse_mae = gates.quality((12.0, 1000), (10.0, 1000), metric="mae", max_drop=0.5, spread=(0.2, 0.2))
    assert worse_mae.state == gates.FAIL and worse_mae.value == pytest.approx(2.0)


def test_the_sample_ratio_check_halts_only_on_a_split_far_from_its_share():
    assert gates.sample_ratio(250, 750, 25).state == gates.PASS
    assert gates.sample_ratio(150, 850, 25).state == gates.FAIL
    assert gates.sample_ratio(10, 40, 25).state == gates.WAITING


def test_identical_arms_are_rarely_aborted_and_bad_canaries_always_are():
    identical = simulate(Arm(), Arm(), runs=150, per_tick=400, seed=11)
    assert identical["outcomes"]["fail"] <= 0.05 * 150 + 3  # the level, with room for 150 runs' noise
    assert identical["outcomes"]["pass"] >= 140
    for canary in (Arm(error_rate=0.04), Arm(latency_median_ms=8.0), Arm(agreement=0.7)):
        bad = simulate(canary, Arm(), runs=40, per_tick=400, seed=12)
        assert bad["outcomes"]["fail"] == 40
