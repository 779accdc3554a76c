"""Rollouts on an alias: start or replace a canary and/or shadow, read its figures, complete or abort it."""
from flask.views import MethodView
from flask_smorest import Blueprint

from api import domain
from api.auth import principal, reads, requires
from api.content import accepts
from api.openapi import errors
from api.schemas import MoveOut, RolloutEndRequest, RolloutOut, RolloutRequest
from registry.aliases import rollouts as state
from registry.aliases.rollouts import ArmSpec

blp = Blueprint("rollouts", __name__, description="Rollouts: canary and shadow traffic on an alias")


@blp.route("/models/<name>/aliases/<alias>/rollout")
class Rollout(MethodView):
    @requires("ci")
    @errors(409)
    @accepts("application/json")
    @blp.arguments(RolloutRequest())
    @blp.response(200, RolloutOut)
    def put(self, body, name, alias):
        """Start or replace the alias's rollout; its versions are loaded and checked like a promote."""
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
        domain.runtime(), name=name, alias=alias, reason=body["reason"], actor=principal().name
    )


def _arm(fields: dict | None) -> ArmSpec | None:
    return ArmSpec(fields["version"], float(fields["percent"])) if fields is not None else None
