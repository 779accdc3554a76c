"""Settling a canary from its figures: complete, abort or wait; and retrain --canary's decision."""
import pytest

from registry_client import Rollout
from trainers.errors import ConfigurationError
from trainers.retrain import CANARY, KEPT, PROMOTED, Champion, RetrainRequest, decide
from trainers.rollout import ABORT, COMPLETE, WAIT, RolloutRule, judge, settle


def figures(canary_requests=500, canary_errors=0, primary_requests=4500, primary_errors=0,
            canary_p99=10.0, primary_p99=10.0, shadow=None):
    return {
        "primary": {"version": 3, "requests": primary_requests, "errors": primary_errors, "p50_ms": 4.0, "p99_ms": primary_p99},
        "canary": {"version": 4, "percent": 10, "requests": canary_requests, "errors": canary_errors, "p50_ms": 4.0, "p99_ms": canary_p99},
        **({"shadow": shadow} if shadow else {}),
    }


def test_a_canary_with_too_few_requests_waits():
    verdict = judge(figures(canary_requests=99), RolloutRule(min_requests=100))
    assert verdict.decision == WAIT and "99 of 100 requests" in verdict.summary


def test_a_canary_no_worse_than_the_primary_is_completed():
    assert judge(figures(canary_errors=1, primary_errors=9), RolloutRule()).decision == COMPLETE


def test_a_canary_with_a_higher_error_rate_is_aborted_and_the_reason_says_both_rates():
    verdict = judge(figures(canary_errors=10, primary_errors=9), RolloutRule())
    assert verdict.decision == ABORT and "error rate 2.00% vs primary 0.20%" in verdict.summary


def test_the_error_rate_tolerance_is_honoured():
    assert judge(figures(canary_errors=10, primary_errors=9), RolloutRule(max_error_rate_increase=0.02)).decision == COMPLETE


@pytest.mark.parametrize(("canary_p99", "expected"), [(14.9, COMPLETE), (15.1, ABORT)])
def test_a_p99_ratio_limit_aborts_a_slow_canary(canary_p99, expected):
    assert judge(figures(canary_p99=canary_p99), RolloutRule(max_p99_ratio=1.5)).decision == expected


@pytest.mark.parametrize(("agreement", "expected"), [(0.97, COMPLETE), (0.90, ABORT)])
def test_a_shadow_that_disagrees_too_often_aborts(agreement, expected):
    shadow = {"version": 5, "percent": 50, "compared": 200, "dropped": 0, "errors": 0, "agreement": agreement}
    assert judge(figures(shadow=shadow), RolloutRule(min_agreement=0.95)).decision == expected


def test_a_regression_shadow_is_held_to_its_mean_absolute_difference():
    shadow = {"version": 5, "percent": 50, "compared": 200, "dropped": 0, "errors": 0, "mean_abs_diff": 0.4, "max_abs_diff": 2.0}
    verdict = judge(figures(shadow=shadow), RolloutRule(max_mean_abs_diff=0.25))
    assert verdict.decision == ABORT and "differed by 0.4" in verdict.summary


def test_a_shadow_only_rollout_cannot_be_judged():
    with pytest.raises(ConfigurationError):
        judge({"primary": {"version": 3, "requests": 10, "errors": 0}}, RolloutRule())


class RecordingClient:
    """Stands in for the registry's HTTP client: answers the figures, records what was asked."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def rollout(self, model, alias):
        return None if self.answer is None else Rollout.from_json(self.answer)

    def complete_rollout(self, model, alias, reason):
        self.calls.append(("complete", model, alias, reason))

    def abort_rollout(self, model, alias, reason):
        self.calls.append(("abort", model, alias, reason))


@pytest.mark.parametrize(("answer", "expected"), [
    (figures(), [("complete", "m", "production")]),
    (figures(canary_errors=50), [("abort", "m", "production")]),
    (figures(canary_requests=5), []),
])
def test_settle_completes_aborts_or_leaves_the_rollout_with_the_verdict_as_reason(answer, expected):
    client = RecordingClient(answer)
    verdict = settle(client, "m", "production", RolloutRule())
    assert [call[:3] for call in client.calls] == expected
    assert all(call[3] == f"rollout judge: {verdict.summary}" for call in client.calls)


def test_settle_without_a_rollout_is_an_error():
    with pytest.raises(ConfigurationError, match="no rollout"):
        settle(RecordingClient(None), "m", "production", RolloutRule())


def canary_decision(candidate, champion):
    request = RetrainRequest(model="m", canary_percent=10)
    return decide(request, "r2", 2, candidate, champion, {"r2": candidate}).decision


def test_with_canary_a_winner_over_a_champion_starts_as_a_canary():
    assert canary_decision(0.9, Champion(version=1, score=0.5)) == CANARY


def test_with_canary_a_loser_is_still_kept():
    assert canary_decision(0.4, Champion(version=1, score=0.5)) == KEPT


def test_with_canary_the_first_version_is_promoted_because_there_is_nothing_to_share_traffic_with():
    assert canary_decision(0.9, None) == PROMOTED
