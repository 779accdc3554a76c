"""Deciding a canary rollout from its live figures: complete it, abort it, or wait for more traffic.

The figures are the registry's ``GET /models/<name>/aliases/<alias>/rollout`` answer, summed over
every worker and replica. The rule is deliberately simple and conservative: a canary is completed
only when it has seen enough requests, its error rate is no worse than the primary's (within a
tolerance) and, when a shadow ran, the shadow agreed with the primary well enough.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from registry_client import RegistryClient

from trainers.errors import ConfigurationError

COMPLETE, ABORT, WAIT = "complete", "abort", "wait"


@dataclass(frozen=True)
class RolloutRule:
    """When a canary has earned the alias."""

    min_requests: int = 100
    max_error_rate_increase: float = 0.0
    max_p99_ratio: float | None = None
    min_agreement: float | None = None
    max_mean_abs_diff: float | None = None


@dataclass(frozen=True)
class Verdict:
    """What the figures say, and why."""

    decision: str
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """The reasons as one line (recorded with the completion or abort)."""
        return "; ".join(self.reasons)


def judge(figures: dict, rule: RolloutRule) -> Verdict:
    """Complete, abort or wait, from a rollout's figures (a pure function of its inputs)."""
    canary, primary = figures.get("canary"), figures.get("primary") or {}
    if not canary:
        raise ConfigurationError("the rollout has no canary to judge; it only shadows")
    if canary.get("requests", 0) < rule.min_requests:
        return Verdict(WAIT, [f"canary v{canary['version']} has {canary.get('requests', 0)} of "
                              f"{rule.min_requests} requests"])
    failures = _error_rate_failures(primary, canary, rule) + _latency_failures(primary, canary, rule)
    failures += _shadow_failures(figures.get("shadow"), rule)
    if failures:
        return Verdict(ABORT, failures)
    return Verdict(COMPLETE, [f"canary v{canary['version']} met the rule: {_rates(primary, canary)}"])


def settle(client: RegistryClient, model: str, alias: str, rule: RolloutRule) -> Verdict:
    """Read the rollout's figures and complete or abort it when they decide; wait otherwise."""
    rollout = client.rollout(model, alias)
    if rollout is None:
        raise ConfigurationError(f"{model!r} has no rollout on {alias!r}")
    verdict = judge(rollout.raw, rule)
    reason = f"rollout judge: {verdict.summary}"
    if verdict.decision == COMPLETE:
        client.complete_rollout(model, alias, reason)
    elif verdict.decision == ABORT:
        client.abort_rollout(model, alias, reason)
    return verdict


def _error_rate(figures: dict) -> float:
    requests = figures.get("requests", 0)
    return figures.get("errors", 0) / requests if requests else 0.0


def _rates(primary: dict, canary: dict) -> str:
    return f"error rate {_error_rate(canary):.2%} vs primary {_error_rate(primary):.2%}"


def _error_rate_failures(primary: dict, canary: dict, rule: RolloutRule) -> list[str]:
    if _error_rate(canary) > _error_rate(primary) + rule.max_error_rate_increase:
        return [f"canary {_rates(primary, canary)} exceeds the allowed +{rule.max_error_rate_increase:.2%}"]
    return []


def _latency_failures(primary: dict, canary: dict, rule: RolloutRule) -> list[str]:
    if rule.max_p99_ratio is None or not primary.get("p99_ms") or canary.get("p99_ms") is None:
        return []
    ratio = canary["p99_ms"] / primary["p99_ms"]
    return [f"canary p99 is {ratio:.2f}x the primary's (at most {rule.max_p99_ratio:g}x)"] if ratio > rule.max_p99_ratio else []


def _shadow_failures(shadow: dict | None, rule: RolloutRule) -> list[str]:
    if not shadow or not shadow.get("compared"):
        return []
    failures = []
    agreement = shadow.get("agreement")
    if rule.min_agreement is not None and agreement is not None and agreement < rule.min_agreement:
        failures.append(f"shadow v{shadow['version']} agreed on {agreement:.2%} (at least {rule.min_agreement:.2%})")
    diff = shadow.get("mean_abs_diff")
    if rule.max_mean_abs_diff is not None and diff is not None and diff > rule.max_mean_abs_diff:
        failures.append(f"shadow v{shadow['version']} differed by {diff:.4g} on average (at most {rule.max_mean_abs_diff:g})")
    return failures
