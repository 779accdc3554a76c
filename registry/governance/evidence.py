"""What a version must show before a protected alias may point at it, and what it lacks.

Each unmet rule is ``{"rule", "detail"}``: ``evaluation`` (a score on the policy's dataset at least as good
as the served version's on the same rows, by the margin), ``card`` (model-card fields filled),
``compatible_signature`` (the same inputs and task as the served version), ``rollout`` (a rollout plan of
this version on this alias that walked every step and passed every gate).
"""
from sqlalchemy import select

from registry.db import db
from registry.evaluations.comparison import LOWER_IS_BETTER_WORDS
from registry.governance.policy import EvaluationRule, Policy
from registry.tables import Evaluation, ModelVersion, RegisteredModel, Rollout, RolloutPlan

SHA256_LENGTH = 64


def missing_evidence(policy: Policy, model: RegisteredModel, alias: str, *, candidate: ModelVersion,
                     current: ModelVersion | None, incompatible: list[str], rollout_done: bool = False) -> list[dict]:
    """The evidence rules of ``policy`` that ``candidate`` does not meet yet (empty: it meets them all);
    ``rollout_done``: the move completes a plan that walked every step (or would, for a plan starting)."""
    missing = []
    if policy.evaluation is not None:
        missing += _evaluation(policy.evaluation, candidate, current)
    empty = [name for name in policy.card if not (getattr(candidate, name) or "").strip()]
    if empty:
        missing.append({"rule": "card", "detail": f"fill the model card's {', '.join(empty)} of version "
                                                  f"{candidate.number} (PATCH the version)", "fields": empty})
    if policy.compatible_signature and incompatible:
        missing.append({"rule": "compatible_signature",
                        "detail": f"version {candidate.number} is incompatible with the served version: "
                                  f"{'; '.join(incompatible)}"})
    if policy.rollout and not rollout_done and not rollout_passed(model, alias, candidate):
        missing.append({"rule": "rollout", "detail": f"walk a rollout plan of version {candidate.number} on {alias!r} "
                                                     "through every step (on_success: halt) first"})
    return missing


def evidence_of(policy: Policy, *, candidate: ModelVersion, current: ModelVersion | None,
                incompatible: list[str]) -> dict:
    """What ``candidate`` shows beside the served version, for each evidence rule of ``policy`` (for people
    to weigh side by side): scores on the policy's dataset, the card's fields, signature differences."""
    shown: dict = {}
    rule = policy.evaluation
    if rule is not None:
        scored = _latest(candidate, rule)
        served = _latest(current, rule, sha256=scored.dataset_sha256) if scored is not None and current else None
        shown["evaluation"] = {
            "dataset": rule.dataset, "metric": rule.metric, "margin": rule.margin,
            "candidate": scored.metrics.get(rule.metric) if scored is not None else None,
            "served": served.metrics.get(rule.metric) if served is not None else None,
            "served_version": current.number if current is not None else None,
        }
    if policy.card:
        shown["card"] = {name: getattr(candidate, name) or "" for name in policy.card}
    if policy.compatible_signature:
        shown["signature"] = list(incompatible)
    return shown


def lower_is_better(rule: EvaluationRule) -> bool:
    """Whether a smaller ``rule.metric`` is the better score (as said, or guessed from the metric's name)."""
    if rule.higher_is_better is not None:
        return not rule.higher_is_better
    return any(word in rule.metric.lower() for word in LOWER_IS_BETTER_WORDS)


def rollout_passed(model: RegisteredModel, alias: str, candidate: ModelVersion) -> bool:
    """Whether a rollout plan of ``candidate`` on ``alias`` reached its last step with every gate passed
    (halted there, waiting for a person, or running there with every verdict a pass)."""
    plans = db.session.execute(
        select(RolloutPlan).join(Rollout, Rollout.id == RolloutPlan.rollout_id)
        .where(Rollout.model_id == model.id, Rollout.alias == alias, Rollout.canary_version_id == candidate.id)
    ).scalars()
    return any(
        plan.step == len(plan.steps) - 1 and plan.state in ("halted", "running", "promoted") and plan.verdicts
        and all(verdict.get("state") == "pass" for verdict in plan.verdicts.values())
        for plan in plans
    )


def _evaluation(rule: EvaluationRule, candidate: ModelVersion, current: ModelVersion | None) -> list[dict]:
    scored = _latest(candidate, rule)
    if scored is None or rule.metric not in scored.metrics:
        return [{"rule": "evaluation", "detail": f"evaluate version {candidate.number} on dataset {rule.dataset!r} "
                                                 f"with metric {rule.metric!r}"}]
    if current is None or current.id == candidate.id:
        return []
    served = _latest(current, rule, sha256=scored.dataset_sha256)
    if served is None or rule.metric not in served.metrics:
        return [{"rule": "evaluation", "detail": f"evaluate the served version {current.number} on the same rows "
                                                 f"(dataset sha256 {scored.dataset_sha256}) with metric {rule.metric!r}"}]
    mine, theirs = scored.metrics[rule.metric], served.metrics[rule.metric]
    gain = theirs - mine if lower_is_better(rule) else mine - theirs
    if gain < rule.margin:
        return [{"rule": "evaluation",
                 "detail": f"version {candidate.number} scores {rule.metric} {mine:g} against {theirs:g} of version "
                           f"{current.number} on {scored.dataset_name!r}: a gain of {gain:g}, the policy asks for "
                           f"{rule.margin:g}", "candidate": mine, "served": theirs}]
    return []


def _latest(version: ModelVersion, rule: EvaluationRule, *, sha256: str | None = None) -> Evaluation | None:
    """The version's newest evaluation on the rule's dataset (by name or sha256), or on exactly ``sha256``."""
    query = select(Evaluation).where(Evaluation.version_id == version.id)
    if sha256 is not None:
        query = query.where(Evaluation.dataset_sha256 == sha256)
    elif len(rule.dataset) == SHA256_LENGTH:
        query = query.where((Evaluation.dataset_sha256 == rule.dataset.lower()) | (Evaluation.dataset_name == rule.dataset))
    else:
        query = query.where(Evaluation.dataset_name == rule.dataset)
    return db.session.execute(query.order_by(Evaluation.id.desc()).limit(1)).scalar_one_or_none()
