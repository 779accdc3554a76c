"""A rollout as callers read it: its settings and its figures per role, since it started."""
from dataclasses import dataclass
from datetime import datetime

from registry.facts import RolloutSpec
from registry.serving.figures import Tally, percentile_ms
from registry.serving.key_units import counted, is_epoch
from registry.serving.routing import CANARY, PRIMARY, SHADOW
from registry.tables import Rollout, RolloutPlan


@dataclass(frozen=True)
class RolloutState:
    """The settings of a rollout and its figures summed over every process (they lag a little)."""

    id: int
    model: str
    alias: str
    started_at: datetime
    started_by: str
    reason: str
    sticky_header: str | None
    ended_at: datetime | None
    primary: dict
    canary: dict | None
    shadow: dict | None
    plan: dict | None = None  # the plan it walks, where it is, and each gate's last answer

    def figures(self) -> dict:
        """The per-role figures alone, as a completion records them in the history."""
        return {"primary": self.primary, "canary": self.canary, "shadow": self.shadow}


def settings(rollout: Rollout) -> dict:
    """The versions and percents of a rollout, as its history events record them."""
    def arm(version, percent):
        return {"version": version.number, "percent": percent} if version is not None else None

    return {
        "rollout_id": rollout.id,
        "canary": arm(rollout.canary, rollout.canary_percent),
        "shadow": arm(rollout.shadow, rollout.shadow_percent),
        "sticky_header": rollout.sticky_header,
    }


def describe(rollout: Rollout, primary_version: int, totals: dict[tuple[str, int], Tally]) -> RolloutState:
    """The state of ``rollout`` with ``totals`` (per role and version) turned into figures."""
    canary, shadow = rollout.canary, rollout.shadow
    epoch = RolloutSpec.of(rollout).epoch if rollout.sticky_header is not None else None

    def served(role: str, version: int) -> dict:
        return _served(version, totals.get((role, version)), epoch, sticky=rollout.sticky_header is not None)

    return RolloutState(
        id=rollout.id,
        model=rollout.model.name,
        alias=rollout.alias,
        started_at=rollout.started_at,
        started_by=rollout.started_by,
        reason=rollout.reason,
        sticky_header=rollout.sticky_header,
        ended_at=rollout.ended_at,
        primary=served(PRIMARY, primary_version),
        canary=(
            {**served(CANARY, canary.number), "percent": rollout.canary_percent}
            if canary is not None else None
        ),
        shadow=(
            _shadowed(shadow.number, rollout.shadow_percent, shadow.task, totals.get((SHADOW, shadow.number)))
            if shadow is not None else None
        ),
    )


def _served(version: int, tally: Tally | None, epoch: float | None, *, sticky: bool) -> dict:
    """An arm's figures: ``errors`` are the server's faults, ``refused`` the callers' (never an error of
    the arm); under a sticky header, ``keys`` the distinct keys seen since the split last changed."""
    tally = tally or Tally()
    return {
        "version": version,
        "requests": tally.requests,
        "errors": tally.errors,
        "refused": tally.refused,
        # an estimate, held to the requests that brought the keys (the sketch may say 80 keys for 79 requests)
        "keys": (min(counted(tally.key_sketch)[0], tally.requests) if is_epoch(tally.key_epoch, epoch) else 0)
        if sticky else None,
        "p50_ms": percentile_ms(tally.latency_buckets, 0.50),
        "p99_ms": percentile_ms(tally.latency_buckets, 0.99),
    }


def _shadowed(version: int, percent: float, task: str, tally: Tally | None) -> dict:
    tally = tally or Tally()
    figures = {"version": version, "percent": percent, "compared": tally.compared, "dropped": tally.dropped,
               "errors": tally.errors}
    if task == "classification":
        figures["agreement"] = round(tally.agreed / tally.rows, 6) if tally.rows else None
    else:
        figures["mean_abs_diff"] = tally.abs_diff_sum / tally.rows if tally.rows else None
        figures["max_abs_diff"] = tally.abs_diff_max if tally.rows else None
    return figures


def plan_view(plan: RolloutPlan) -> dict:
    """What a rollout's plan shows: its steps, the one running (numbered from 1, as its details and
    history number it; stored from 0), its state and why, and each gate with its settings and its
    last answer (waiting until the controller first looked)."""
    gates = {}
    for name, configured in {**plan.gates, "sample_ratio": {}}.items():
        verdict = (plan.verdicts or {}).get(name) or {"state": "waiting", "needed": None, "seen": 0, "value": None,
                                                      "detail": "not looked at yet"}
        gates[name] = {**verdict, "settings": configured}
    return {
        "step": plan.step + 1, "state": plan.state, "detail": plan.detail, "steps": plan.steps,
        "on_success": plan.on_success, "step_started_at": plan.step_started_at, "gates": gates,
        "figures": plan.figures,  # the step's figures the gates last judged (null until then)
    }
