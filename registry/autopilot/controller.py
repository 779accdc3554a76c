"""The rollout controller: at every tick, whichever process holds the fleet's ``rollouts`` lease
judges each running plan on its step's figures and advances, completes, halts or aborts it through
the same use cases a person calls.

A step's figures are the rollout's totals since the step began (the plan keeps the totals it began
with). Each gate decides only at the looks its schedule allows: its first once it has a quarter of
the step's requests, then each time its samples have doubled, at most ``gates.LOOKS`` times (the
levels of :mod:`registry.autopilot.gates` are spent over those looks); between looks its last
answer stands. A step counts from its baseline, taken ``SETTLE_SECONDS`` after it began: by then every worker
routes by the step's share and has flushed what it routed before, so requests split by the former
share do not skew the figures (the sample-ratio check would take them for a broken split). The step
passes when every gate passed and both arms have the step's requests (with a sticky header, its
distinct keys: the key is the experiment's unit, and weighs at most a few requests in any gate); the
rollout ends when a gate fails; the plan halts when the split does not match its share or the
step's time runs out before its gates decided. Every decision carries its figures into the history
and out as a webhook event. A plan the controller fails on halts alone; the others are judged.

Nothing lives only in memory: a controller killed between ticks leaves the plan as it was, and the
next holder of the lease carries on. Every action names the step it was decided at and does
nothing if the plan moved meanwhile (a person acted, or a controller that lost its lease), so no
decision is taken twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select

from registry.aliases import rollouts
from registry.autopilot import gates
from registry.autopilot.reference_check import reference_agreement
from registry.autopilot.step_figures import baseline_counts, keys_in, since, step_figures
from registry.db import db, end_read, write_transaction
from registry.errors import Conflict, PolicyRefused, RegistryError, RolloutNotFound
from registry.governance.policy import CONTROLLER
from registry.intervals import Z_95
from registry.monitoring.quality import monitoring
from registry.facts import RolloutSpec
from registry.monitoring.references import agreement_rows
from registry.serving.figures import Tally, summed
from registry.serving.routing import CANARY, PRIMARY
from registry.serving.runtime import Runtime
from registry.tables import Alias, RegisteredModel, Rollout, RolloutPlan, utcnow

log = logging.getLogger(__name__)

LEASE = "rollouts"
ACTOR = CONTROLLER  # the name a protected alias's policy lets move it (movers.tokens)
SETTLE_SECONDS = 3.0  # the alias refresh (1 s) and a figures flush (1 s), with room to spare
FIRST_LOOK_SHARE = 4  # a gate first looks once it has a quarter of the step's requests ...
MIN_FIRST_LOOK = 20  # ... and never before this many


@dataclass(frozen=True)
class Decision:
    """What the controller did with one plan at one tick."""

    model: str
    alias: str
    step: int | None  # the step's number, from 1 (None when the plan could not be read)
    action: str  # wait, step, promote, halt, abort
    detail: str


@dataclass(frozen=True)
class StepView:
    """What a tick reads of one running plan: where it is, its settings, and its step's figures."""

    model: str
    alias: str
    step_index: int
    steps: list[dict]
    gates: dict[str, dict]
    on_success: str
    looks: dict
    verdicts: dict
    started_at: datetime
    settled: bool  # the step's baseline is taken: its figures count
    sticky: bool
    task: str
    canary_version: int
    primary_version: int
    canary: Tally
    primary: Tally
    # Under a sticky header: each arm's distinct keys this split (an estimate and its standard deviation).
    canary_keys: tuple[int, float] = (0, 0.0)
    primary_keys: tuple[int, float] = (0, 0.0)
    reference_rows: tuple[list, ...] = ()  # rows no caller chose, for the agreement gate (references.gate_rows)

    @property
    def units(self) -> tuple[int, int]:
        """What the step's ``min_requests`` counts on each arm (canary, primary): with a sticky header
        the distinct keys, else the requests."""
        if self.sticky:
            return self.canary_keys[0], self.primary_keys[0]
        return self.canary.weighed, self.primary.weighed

    @property
    def step(self) -> dict:
        """The running step's settings."""
        return self.steps[self.step_index]

    @property
    def number(self) -> int:
        """The running step as people count it, from 1 (``step_index`` counts from 0, as stored)."""
        return self.step_index + 1


def tick(runtime: Runtime) -> list[Decision]:
    """Judge every running plan once and act where its gates decided (call it holding the lease)."""
    running = db.session.execute(
        select(RegisteredModel.name, Rollout.alias).select_from(RolloutPlan)
        .join(Rollout, Rollout.id == RolloutPlan.rollout_id).join(RegisteredModel, RegisteredModel.id == Rollout.model_id)
        .where(RolloutPlan.state == "running", Rollout.ended_at.is_(None))
        .order_by(RolloutPlan.rollout_id)
    ).all()
    end_read()
    decisions = []
    for name, alias in running:
        try:
            decisions.append(judge(runtime, read_step(name, alias)))
        except PolicyRefused as exc:  # the alias's policy changed (or froze it) after the plan began: people decide
            detail = (f"the policy of {alias!r} refuses the plan's next move ({exc.detail}); request approval of the "
                      "canary, or resume the plan once the policy allows it")
            decisions.append(_halt(name, alias, None, detail, {"missing": exc.missing}))
        except (Conflict, RolloutNotFound) as exc:  # a person (or another controller) acted first: theirs stands
            decisions.append(Decision(name, alias, None, "wait", str(exc)))
        except RegistryError as exc:  # e.g. the canary no longer loads: say so on the plan and stop there
            log.warning("the rollout plan of %r on %r halts: %s", name, alias, exc)
            decisions.append(_halt(name, alias, None, f"the controller could not act: {exc}", {}))
        except Exception as exc:  # a fault in this plan (a setting stored that no longer makes sense, a bug): it alone halts
            decisions.append(_failed(name, alias, exc))
    return decisions


def _failed(name: str, alias: str, exc: Exception) -> Decision:
    """Halt a plan the controller failed on, saying why; logged once (a halted plan is not judged again)."""
    db.session.rollback()
    log.error("the rollout plan of %r on %r halts: the controller failed on it", name, alias, exc_info=exc)
    detail = (f"the controller failed on this plan ({type(exc).__name__}: {str(exc)[:200]}); correct the plan "
              "(PUT the rollout again) and resume it, or abort")
    try:
        return _halt(name, alias, None, detail, {})
    except Exception:  # the database refuses the halt too: the next tick tries again, the other plans go on
        db.session.rollback()
        return Decision(name, alias, None, "wait", detail)


def read_step(name: str, alias: str) -> StepView:
    """The running plan of ``alias`` and its step's figures (the read ends before anything is decided)."""
    rollout = db.session.execute(
        select(Rollout).join(RegisteredModel, RegisteredModel.id == Rollout.model_id)
        .where(RegisteredModel.name == name, Rollout.alias == alias, Rollout.ended_at.is_(None))
    ).scalar_one()
    plan = db.session.get(RolloutPlan, rollout.id)
    primary = db.session.execute(select(Alias).where(Alias.model_id == rollout.model_id, Alias.name == alias)).scalar_one().version
    primary_version = primary.number
    totals = summed(rollout.id)
    canary_version = rollout.canary.number
    epoch = RolloutSpec.of(rollout).epoch
    canary_total, primary_total = totals.get((CANARY, canary_version)), totals.get((PRIMARY, primary_version))
    rows = agreement_rows(rollout.canary, primary) if "agreement" in plan.gates else ()
    view = StepView(
        model=name, alias=alias, step_index=plan.step, steps=list(plan.steps), gates=dict(plan.gates),
        on_success=plan.on_success, looks=dict(plan.looks or {}), verdicts=dict(plan.verdicts or {}),
        started_at=plan.step_started_at, settled=bool(plan.baseline), sticky=rollout.sticky_header is not None,
        task=rollout.canary.task,
        canary_version=canary_version, primary_version=primary_version,
        canary=since(canary_total, plan.baseline.get(f"{CANARY}:{canary_version}")),
        primary=since(primary_total, plan.baseline.get(f"{PRIMARY}:{primary_version}")),
        canary_keys=keys_in(canary_total, epoch), primary_keys=keys_in(primary_total, epoch), reference_rows=rows,
    )
    end_read()
    return view


def judge(runtime: Runtime, view: StepView) -> Decision:
    """Decide on one plan's step, and act on it."""
    if not view.settled:
        return _settle(view)
    reference = reference_agreement(runtime, model=view.model, canary_version=view.canary_version,
                                    primary_version=view.primary_version, task=view.task, rows=view.reference_rows,
                                    settings=view.gates.get("agreement"))
    answers = answers_of(view, reference)
    verdicts, looks = looked(view, answers)
    elapsed = utcnow() - view.started_at
    verdicts = {gate: {**verdict, "eta_s": _eta_seconds(verdict, elapsed)} for gate, verdict in verdicts.items()}
    evidence = {"decided_at_step": view.number, "gates": verdicts, "step_figures": step_figures(view),
                "elapsed_s": round(elapsed.total_seconds(), 1)}
    failed = {gate: verdict for gate, verdict in verdicts.items() if verdict["state"] == gates.FAIL}
    if "sample_ratio" in failed:
        return _halt(view.model, view.alias, view.step_index,
                     f"step {view.number} halted: {failed['sample_ratio']['detail']}", evidence)
    if failed:
        gate, verdict = next(iter(failed.items()))
        detail = f"the {gate.replace('_', ' ')} gate failed at step {view.number}: {verdict['detail']}"
        rollouts.abort_rollout(runtime, name=view.model, alias=view.alias, reason=detail, actor=ACTOR,
                               at_step=view.step_index, **evidence)
        return Decision(view.model, view.alias, view.number, "abort", detail)
    if all(v["state"] == gates.PASS for v in verdicts.values()) and min(view.units) >= view.step["min_requests"]:
        return _passed(runtime, view, evidence)
    if elapsed > timedelta(minutes=view.step["max_minutes"]):
        waiting = (", ".join(gate for gate, v in verdicts.items() if v["state"] != gates.PASS)
                   or ("the step's keys" if view.sticky else "the step's requests"))
        return _halt(view.model, view.alias, view.step_index,
                     f"step {view.number} ran out of its {view.step['max_minutes']:g} minutes before it "
                     f"decided (waiting for {waiting}); resume, advance, complete or abort it", evidence)
    _note(view, verdicts, looks, evidence["step_figures"])
    return Decision(view.model, view.alias, view.number, "wait", "the gates are still deciding")


def answers_of(view: StepView, reference: gates.Verdict | None = None) -> dict[str, gates.Verdict]:
    """Every gate of the plan on the step's figures now (whether or not it is due to look).

    The gates weigh what the figures call ``weighed``: every request the server answered or failed
    (a caller's refused request is none), and under a sticky header only each key's first few
    (``key_units``), so that no caller decides a verdict by sending more. ``reference`` is the
    agreement gate's answer on rows no caller chose, when the versions have such rows."""
    canary, primary, settings = view.canary, view.primary, view.gates
    need = view.step["min_requests"]
    answers = {}
    if "error_rate" in settings:
        answers["error_rate"] = gates.error_rate(
            (canary.weighed_errors, canary.weighed), (primary.weighed_errors, primary.weighed),
            max_increase=settings["error_rate"]["max_increase"], min_requests=need)
    if "latency" in settings:
        answers["latency"] = gates.latency(canary.latency_by_rows, primary.latency_by_rows,
                                           max_p99_ratio=settings["latency"]["max_p99_ratio"], min_requests=need)
    if "agreement" in settings:
        answers["agreement"] = _agreement(view, settings["agreement"], need // FIRST_LOOK_SHARE, reference)
    if "quality" in settings:
        answers["quality"] = _quality(view, settings["quality"]["max_drop"])
    answers["sample_ratio"] = (gates.key_ratio(view.canary_keys, view.primary_keys, view.step["percent"]) if view.sticky
                               else gates.sample_ratio(canary.weighed, primary.weighed, view.step["percent"]))
    return answers


def _agreement(view: StepView, settings: dict, min_rows: int, reference: gates.Verdict | None) -> gates.Verdict:
    """The agreement gate: the canary's live mirrored rows, and (failing on either) rows no caller chose."""
    canary = view.canary
    live = (gates.agreement(canary.agreed, canary.rows, minimum=settings["min"], min_rows=min_rows)
            if "min" in settings else
            gates.mean_difference(canary.abs_diff_sum, canary.abs_diff_sq_sum, canary.rows,
                                  maximum=settings["max_mean_abs_diff"], min_rows=min_rows))
    if reference is None:
        return replace(live, detail=f"{live.detail}; no rows of the versions' own (a drift reference, an input "
                                    "example) to check them on")
    if reference.state == gates.FAIL:
        return replace(reference, seen=live.seen, needed=live.needed,
                       detail=f"on rows no caller chose: {reference.detail} (live: {live.detail})")
    return replace(live, detail=f"{live.detail}; on rows no caller chose: {reference.detail}")


def looked(view: StepView, answers: dict[str, gates.Verdict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Each gate's verdict under its look schedule, and the looks made so far this step.

    A gate due to look (its samples reached its first look, or doubled since its last, and looks are
    left) answers now; otherwise its last decision stands, or it waits."""
    first = max(MIN_FIRST_LOOK, view.step["min_requests"] // FIRST_LOOK_SHARE)
    verdicts, looks = {}, dict(view.looks)
    for gate, answer in answers.items():
        last = looks.get(gate) or {"n": 0, "count": 0}
        due_at = max(first, 2 * last["n"])
        if answer.seen >= due_at and last["count"] < gates.LOOKS:
            looks[gate] = {"n": answer.seen, "count": last["count"] + 1}
            verdicts[gate] = answer.to_dict()
            continue
        previous = view.verdicts.get(gate)
        if previous and previous["state"] in (gates.PASS, gates.FAIL):
            verdicts[gate] = previous
        else:
            note = f"next look at {due_at} samples" if last["count"] < gates.LOOKS else "no look left this step"
            verdicts[gate] = {**answer.to_dict(), "state": gates.WAITING, "detail": f"{answer.detail} ({note})"}
    return verdicts, looks


def _eta_seconds(verdict: dict, elapsed: timedelta) -> float | None:
    """How long a waiting gate will take to see the samples it needs, at the step's pace so far."""
    needed, seen = verdict.get("needed"), verdict.get("seen") or 0
    if verdict["state"] != gates.WAITING or not needed or seen <= 0 or seen >= needed:
        return None
    return round((needed - seen) * elapsed.total_seconds() / seen, 1)


def _passed(runtime: Runtime, view: StepView, evidence: dict) -> Decision:
    """The step passed: on to the next step, or through the plan's ``on_success`` after the last."""
    last = view.step_index + 1 == len(view.steps)
    if not last:
        percent = view.steps[view.step_index + 1]["percent"]
        detail = f"step {view.number} passed every gate: the canary takes {percent:g}%"
        rollouts.step_rollout(name=view.model, alias=view.alias, at_step=view.step_index, percent=percent, actor=ACTOR,
                              reason=detail, evidence=evidence)
        return Decision(view.model, view.alias, view.number, "step", detail)
    if view.on_success == "promote":
        detail = f"every step passed every gate: the canary v{view.canary_version} is promoted"
        rollouts.complete_rollout(runtime, name=view.model, alias=view.alias, reason=detail, actor=ACTOR, role=None,
                                  at_step=view.step_index, **evidence)
        return Decision(view.model, view.alias, view.number, "promote", detail)
    return _halt(view.model, view.alias, view.step_index,
                 "every step passed every gate; the plan waits for a person to promote the canary or abort", evidence)


def _halt(name: str, alias: str, step_index: int | None, detail: str, evidence: dict) -> Decision:
    try:
        rollouts.set_plan_state(name=name, alias=alias, state="halted", actor=ACTOR, reason=detail, at_step=step_index,
                                evidence=evidence)
    except (Conflict, RolloutNotFound) as exc:
        return Decision(name, alias, _number(step_index), "wait", str(exc))
    return Decision(name, alias, _number(step_index), "halt", detail)


def _number(step_index: int | None) -> int | None:
    """A step as people count it, from 1."""
    return step_index + 1 if step_index is not None else None


def _settle(view: StepView) -> Decision:
    """Take the step's baseline once every worker follows its share; until then the step waits."""
    waited = (utcnow() - view.started_at).total_seconds()
    if waited < SETTLE_SECONDS:
        return Decision(view.model, view.alias, view.number, "wait", "settling: every worker takes up the share")
    with write_transaction() as session:
        plan = _plan_at(session, view)
        if plan is not None:
            totals = summed(plan.rollout_id)
            plan.baseline = {"settled_at": utcnow().isoformat(),
                             **{f"{role}:{version}": baseline_counts(tally) for (role, version), tally in totals.items()}}
            plan.updated_at = utcnow()
    return Decision(view.model, view.alias, view.number, "wait", "settled: the step's figures count from now")


def _note(view: StepView, verdicts: dict, looks: dict, figures: dict) -> None:
    """Keep the gates' answers, their looks and the step's figures they rest on, on the plan (what GET
    shows), unless the plan moved meanwhile."""
    with write_transaction() as session:
        plan = _plan_at(session, view)
        if plan is not None:
            plan.verdicts, plan.looks, plan.figures, plan.updated_at = verdicts, looks, figures, utcnow()


def _plan_at(session, view: StepView) -> RolloutPlan | None:
    """The plan ``view`` was read from, if it still runs the same step."""
    plan = session.execute(
        select(RolloutPlan).select_from(RolloutPlan).join(Rollout, Rollout.id == RolloutPlan.rollout_id)
        .join(RegisteredModel, RegisteredModel.id == Rollout.model_id)
        .where(RegisteredModel.name == view.model, Rollout.alias == view.alias, Rollout.ended_at.is_(None))
    ).scalar_one_or_none()
    return plan if plan is not None and plan.step == view.step_index and plan.state == "running" else None


def _quality(view: StepView, max_drop: float) -> gates.Verdict:
    """The arms' live quality since the step began, from the prediction log's labelled answers that the
    gates weigh: with a sticky header, each key's first few per arm and process, as in every other gate."""
    span = max(utcnow() - view.started_at, timedelta(seconds=1))
    arms = {}
    for role, version in ((CANARY, view.canary_version), (PRIMARY, view.primary_version)):
        routes = monitoring(view.model, str(version), window="step", span=span, thresholds=None,
                            weighed_only=True).routes
        arms[role] = routes.get(role)
    end_read()
    canary, primary = arms[CANARY], arms[PRIMARY]
    if canary is None or primary is None or canary.quality is None or primary.quality is None:
        seen = min(canary.labelled if canary else 0, primary.labelled if primary else 0)
        return gates.Verdict(gates.WAITING, 100, seen, None, "waiting for labels on both arms (feedback)")
    c, p = canary.quality, primary.quality
    spread = ((c.ci_high - c.ci_low) / (2 * Z_95), (p.ci_high - p.ci_low) / (2 * Z_95))
    return gates.quality((c.value, c.rows), (p.value, p.rows), metric=c.metric, max_drop=max_drop, spread=spread)
