"""Rollouts on an alias: start or replace a canary and/or shadow (by hand or with a plan the server
walks), read its figures and its plan, pause, resume or advance the plan, complete or abort it."""
from flask.views import MethodView
from flask_smorest import Blueprint

from api import domain
from api.auth import principal, reads, requires
from api.content import accepts
from api.openapi import errors
from api.schemas.aliases import MoveOut
from api.schemas.rollouts import PlanStepRequest, RolloutEndRequest, RolloutOut, RolloutRequest
from registry.aliases import rollouts as state
from registry.aliases.rollouts import ArmSpec

blp = Blueprint("rollouts", __name__, description="Rollouts: canary and shadow traffic on an alias")


@blp.route("/models/<name>/aliases/<alias>/rollout")
class Rollout(MethodView):
    @requires("ci")
    @errors(409, 410)
    @accepts("application/json")
    @blp.arguments(RolloutRequest())
    @blp.response(200, RolloutOut)
    def put(self, body, name, alias):
        """Start or replace the alias's rollout; its versions are loaded and checked like a promote.

        With a ``plan`` the canary starts at the plan's first step and the server walks it: steps
        advance when every gate passes, the canary is promoted after the last (``on_success``), and
        a failing gate aborts it. Without one, a person sets the shares (and any plan is dropped)."""
        return state.start_rollout(
            domain.runtime(),
            name=name,
            alias=alias,
            canary=_arm(body["canary"]),
            shadow=_arm(body["shadow"]),
            sticky_header=body["sticky_header"],
            reason=body["reason"],
            force=body["force"],
            actor=principal().name,
            role=principal().role,
            groups=principal().groups,
            plan=body["plan"],
        )

    @reads
    @blp.response(200, RolloutOut)
    def get(self, name, alias):
        """The running rollout and its figures, summed over every worker and replica."""
        return state.get_rollout(name, alias)

    @requires("ci")
    @errors(409)
    @accepts("application/json", body_optional=True)
    @blp.arguments(RolloutEndRequest(), required=False)
    @blp.response(200, RolloutOut)
    def delete(self, body, name, alias):
        """Abort: all of the alias's traffic goes back to its primary version."""
        return state.abort_rollout(
            domain.runtime(), name=name, alias=alias, reason=body["reason"], actor=principal().name
        )


@blp.route("/models/<name>/aliases/<alias>/rollout/promote", methods=["POST"])
@requires("ci")
@errors(409)
@accepts("application/json", body_optional=True)
@blp.arguments(RolloutEndRequest(), required=False)
@blp.response(200, MoveOut)
def complete(body, name, alias):
    """Complete: the alias moves to the canary as a promote whose event carries the figures."""
    return state.complete_rollout(
        domain.runtime(), name=name, alias=alias, reason=body["reason"], actor=principal().name, role=principal().role
    )


@blp.route("/models/<name>/aliases/<alias>/rollout/pause", methods=["POST"])
@requires("ci")
@errors(409)
@accepts("application/json", body_optional=True)
@blp.arguments(PlanStepRequest(), required=False)
@blp.response(200, RolloutOut)
def pause(body, name, alias):
    """Pause the plan: traffic stays split as it is, and the controller decides nothing until resumed."""
    return state.set_plan_state(name=name, alias=alias, state="paused", actor=principal().name, reason=body["reason"])


@blp.route("/models/<name>/aliases/<alias>/rollout/resume", methods=["POST"])
@requires("ci")
@errors(409)
@accepts("application/json", body_optional=True)
@blp.arguments(PlanStepRequest(), required=False)
@blp.response(200, RolloutOut)
def resume(body, name, alias):
    """Resume a paused or halted plan: its step starts counting again from now."""
    return state.set_plan_state(name=name, alias=alias, state="running", actor=principal().name, reason=body["reason"])


@blp.route("/models/<name>/aliases/<alias>/rollout/advance", methods=["POST"])
@requires("ci")
@errors(409)
@accepts("application/json", body_optional=True)
@blp.arguments(PlanStepRequest(), required=False)
@blp.response(200, RolloutOut)
def advance(body, name, alias):
    """Skip the plan's step without waiting for its gates: on to the next step; past the last one the
    canary is promoted (the answer shows the ended rollout, its plan ``promoted``)."""
    return state.skip_step(domain.runtime(), name=name, alias=alias, actor=principal().name, role=principal().role,
                           reason=body["reason"], groups=principal().groups)


def _arm(fields: dict | None) -> ArmSpec | None:
    if fields is None:
        return None
    # A planned canary comes without a percent: its plan's first step sets it (the schema checked that).
    return ArmSpec(fields["version"], float(fields["percent"]) if fields["percent"] is not None else 100.0)
