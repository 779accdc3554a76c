"""Rollout plans: the steps a canary walks (its share, the requests each arm needs, how long a step
may take) and the gates that judge it, checked field by field, with defaults a small team can
start from.

A plan is data: validated here into a :class:`Plan`, stored with its rollout
(``registry.tables.RolloutPlan``) and walked by the controller (``registry.autopilot.controller``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from registry.errors import InvalidInput, listed

MAX_STEPS = 10
MAX_MINUTES = 7 * 24 * 60
MAX_MIN_REQUESTS = 10_000_000
ON_SUCCESS = ("promote", "halt")
GATES = ("error_rate", "latency", "agreement", "quality")

# What a plan leaves out: three steps, each needing enough requests for the error-rate gate to tell
# a rise of one point, and gates that stop a canary that fails, slows down or answers otherwise.
DEFAULT_STEPS = (
    {"percent": 5.0, "min_requests": 500, "max_minutes": 60.0},
    {"percent": 25.0, "min_requests": 1000, "max_minutes": 60.0},
    {"percent": 50.0, "min_requests": 2000, "max_minutes": 120.0},
)
DEFAULT_GATES = {
    "error_rate": {"max_increase": 0.01},
    "latency": {"max_p99_ratio": 1.5},
}
DEFAULT_CLASSIFIER_AGREEMENT = {"min": 0.9}  # a regressor's answers differ on a scale only its team knows


@dataclass(frozen=True)
class Step:
    """One step: the canary's share, the requests each arm needs before the gates may pass it, and its time limit."""

    percent: float
    min_requests: int
    max_minutes: float


@dataclass(frozen=True)
class Plan:
    """Steps, gates (name -> settings) and what happens after the last step."""

    steps: tuple[Step, ...]
    gates: dict[str, dict]
    on_success: str

    def to_row(self) -> dict:
        """The plan's columns as stored."""
        return {"steps": [asdict(step) for step in self.steps], "gates": self.gates, "on_success": self.on_success}


def checked_plan(raw: dict, *, task: str) -> Plan:
    """The plan ``raw`` describes (as the API received it), with defaults for what it leaves out;
    InvalidInput naming every field that is wrong."""
    errors: dict[str, object] = {}
    if not isinstance(raw, dict):
        raise InvalidInput("plan must be an object with steps, gates and on_success", errors={"plan": ["not an object"]})
    unknown = sorted(set(raw) - {"steps", "gates", "on_success"})
    if unknown:
        errors["plan"] = [f"unknown field {name!r}" for name in unknown]
    steps = _steps(raw.get("steps"), errors)
    gates = _gates(raw.get("gates"), task, errors)
    on_success = raw.get("on_success", "promote")
    if on_success not in ON_SUCCESS:
        errors["on_success"] = [f"must be one of {', '.join(ON_SUCCESS)}"]
    if errors:
        raise InvalidInput(f"the rollout plan is not valid: {_describe(errors)}", errors={"plan": errors})
    return Plan(steps, gates, on_success)


def _steps(raw, errors: dict) -> tuple[Step, ...]:
    if raw is None:
        return tuple(Step(**step) for step in DEFAULT_STEPS)
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STEPS:
        errors["steps"] = [f"a list of 1 to {MAX_STEPS} steps"]
        return ()
    steps, previous = [], 0.0
    for i, step in enumerate(raw):
        problems = _step_problems(step, previous)
        if problems:
            errors[f"steps.{i}"] = problems
            continue
        steps.append(Step(float(step["percent"]), int(step.get("min_requests", 1000)), float(step.get("max_minutes", 60))))
        previous = float(step["percent"])
    return tuple(steps)


def _step_problems(step, previous: float) -> list[str]:
    if not isinstance(step, dict):
        return ["a step is an object with percent, min_requests and max_minutes"]
    problems = [f"unknown field {name!r}" for name in sorted(set(step) - {"percent", "min_requests", "max_minutes"})]
    percent = step.get("percent")
    if not _number(percent) or not 0 < percent < 100:
        problems.append("percent: a number above 0 and below 100 (the last step promotes, or halts)")
    elif percent <= previous:
        problems.append(f"percent: each step gives the canary more than the one before ({previous:g}%)")
    min_requests = step.get("min_requests", 1000)
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or not 1 <= min_requests <= MAX_MIN_REQUESTS:
        problems.append(f"min_requests: a whole number from 1 to {MAX_MIN_REQUESTS:,}")
    max_minutes = step.get("max_minutes", 60)
    if not _number(max_minutes) or not 0 < max_minutes <= MAX_MINUTES:
        problems.append(f"max_minutes: a number above 0 and at most {MAX_MINUTES} (a week)")
    return problems


def _gates(raw, task: str, errors: dict) -> dict[str, dict]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        errors["gates"] = ["an object of gates: error_rate, latency, agreement, quality"]
        return {}
    unknown = sorted(set(raw) - set(GATES))
    if unknown:
        errors["gates"] = [f"unknown gate {listed([repr(name) for name in unknown])}; gates are {', '.join(GATES)}"]
    gates = {name: dict(settings) for name, settings in DEFAULT_GATES.items()}
    if task == "classification":
        gates["agreement"] = dict(DEFAULT_CLASSIFIER_AGREEMENT)
    for name in GATES:
        if name not in raw:
            continue
        if raw[name] is None:  # turned off
            gates.pop(name, None)
            continue
        problems = _gate_problems(name, raw[name], task)
        if problems:
            errors[f"gates.{name}"] = problems
        else:
            gates[name] = dict(raw[name])
    return gates


def _gate_problems(name: str, settings, task: str) -> list[str]:
    if not isinstance(settings, dict):
        return ["an object of settings, or null to turn the gate off"]
    allowed = {"error_rate": {"max_increase"}, "latency": {"max_p99_ratio"},
               "agreement": {"min", "max_mean_abs_diff"}, "quality": {"max_drop"}}[name]
    problems = [f"unknown setting {key!r}" for key in sorted(set(settings) - allowed)]
    if name == "error_rate" and not (_number(settings.get("max_increase")) and 0 < settings["max_increase"] < 1):
        # 0 is refused: no interval of a difference of rates ever lies wholly at or below 0, so the gate could never pass
        problems.append("max_increase: the rise of the error rate allowed, above 0 and below 1 (0.01: one point)")
    if name == "latency" and not (_number(settings.get("max_p99_ratio")) and 1 <= settings["max_p99_ratio"] <= 100):
        problems.append("max_p99_ratio: the canary's p99 over the primary's allowed, from 1 to 100")
    if name == "agreement":
        problems += _agreement_problems(settings, task)
    if name == "quality" and not (_number(settings.get("max_drop")) and settings["max_drop"] >= 0):
        problems.append("max_drop: how much worse the live quality may be (accuracy points, or MAE), at least 0")
    return problems


def _agreement_problems(settings: dict, task: str) -> list[str]:
    if task == "classification":
        if not (_number(settings.get("min")) and 0 < settings["min"] <= 1) or "max_mean_abs_diff" in settings:
            return ["min: the share of mirrored rows answered alike, above 0 and at most 1 (a classifier's gate)"]
        return []
    if not (_number(settings.get("max_mean_abs_diff")) and settings["max_mean_abs_diff"] >= 0) or "min" in settings:
        return ["max_mean_abs_diff: the mean absolute difference from the primary's answers allowed, at least 0 "
                "(a regressor's gate)"]
    return []


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _describe(errors: dict) -> str:
    return "; ".join(f"{where}: {', '.join(problems) if isinstance(problems, list) else problems}"
                     for where, problems in errors.items())
