"""Rollouts: canary and shadow arms, a plan's steps and gates (``api.schemas.plans``), and their live figures."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.schemas.fields import FiniteNumber, JsonBoolean, OptionalReason, UTCDateTime, WholeNumber
from api.schemas.plans import PlanRequest, PlanStepOut
from registry.aliases.rollouts import HEADER_NAME
from registry.names import MAX_ID


class RolloutArm(Schema):
    version = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_ID))
    percent = FiniteNumber(
        load_default=None, validate=validate.Range(min=0, max=100, min_inclusive=False),
        metadata={"exclusiveMinimum": 0, "description": "share of the alias's requests, in (0, 100]; "
                                                        "a planned canary's comes from its plan's first step"},
    )


class RolloutRequest(Schema):
    class Meta:
        openapi = {"anyOf": [{"required": [role], "properties": {role: {"type": "object"}}} for role in ("canary", "shadow")]}

    canary = fields.Nested(RolloutArm, load_default=None, allow_none=True)
    shadow = fields.Nested(RolloutArm, load_default=None, allow_none=True)
    sticky_header = fields.String(load_default=None, allow_none=True,
                                  metadata={"example": "X-User-Id", "pattern": HEADER_NAME.pattern})
    reason = OptionalReason()
    force = JsonBoolean(load_default=False)
    plan = fields.Nested(PlanRequest, load_default=None, allow_none=True, metadata={
        "description": "walk the canary by itself through the plan's steps; defaults for what is left out",
        "example": {"steps": [{"percent": 5, "min_requests": 500, "max_minutes": 60},
                              {"percent": 50, "min_requests": 2000, "max_minutes": 120}],
                    "gates": {"error_rate": {"max_increase": 0.01}, "latency": {"max_p99_ratio": 1.5}},
                    "on_success": "promote"}})

    @validates_schema
    def _percents(self, data, **kwargs):
        errors = {}
        if data.get("shadow") and data["shadow"]["percent"] is None:
            errors["shadow"] = {"percent": ["Missing data for required field."]}
        canary, planned = data.get("canary"), data.get("plan") is not None
        if canary and canary["percent"] is None and not planned:
            errors["canary"] = {"percent": ["Missing data for required field (or give a plan)."]}
        if canary and canary["percent"] is not None and planned:
            errors["canary"] = {"percent": ["a plan sets the canary's share from its first step: leave percent out"]}
        if errors:
            raise ValidationError(errors)


class PlanStepRequest(Schema):
    reason = OptionalReason()


class RolloutEndRequest(Schema):
    reason = OptionalReason()


class ServedFigures(Schema):
    version = fields.Integer()
    requests = fields.Integer()
    errors = fields.Integer(metadata={"description": "requests the server failed (its faults only)"})
    refused = fields.Integer(metadata={"description": "requests refused for the caller's fault (4xx): no error of the arm"})
    keys = fields.Integer(allow_none=True, metadata={
        "description": "with a sticky header: distinct keys since the split last changed (estimated); else null"})
    p50_ms = fields.Float(allow_none=True)
    p99_ms = fields.Float(allow_none=True)


class CanaryFigures(ServedFigures):
    percent = fields.Float()


class ShadowFigures(Schema):
    version = fields.Integer()
    percent = fields.Float()
    compared = fields.Integer()
    dropped = fields.Integer()
    errors = fields.Integer()
    agreement = fields.Float(allow_none=True, metadata={"description": "classifiers: share of rows labelled alike"})
    mean_abs_diff = fields.Float(allow_none=True, metadata={"description": "regressors"})
    max_abs_diff = fields.Float(allow_none=True, metadata={"description": "regressors"})


class GateOut(Schema):
    state = fields.String(metadata={"enum": ["pass", "fail", "waiting"]})
    needed = fields.Integer(allow_none=True, metadata={"description": "samples the gate needs to decide (estimated)"})
    seen = fields.Integer(metadata={"description": "samples it has this step"})
    eta_s = fields.Float(allow_none=True, metadata={
        "description": "while waiting: seconds until it has the samples it needs, at the step's pace so far"})
    value = fields.Float(allow_none=True, metadata={"description": "its figure: a rise, a ratio, a share, a drop"})
    detail = fields.String(metadata={"description": "why, in words, with the figures"})
    settings = fields.Dict(metadata={"description": "the gate's settings in the plan"})
    by_rows = fields.Dict(metadata={
        "description": "latency: per batch-size class both arms answered, each arm's requests and p99_ms and their ratio"})


class PlanOut(Schema):
    step = fields.Integer(metadata={"description": "the running step, numbered from 1"})
    state = fields.String(metadata={"enum": ["running", "paused", "halted", "promoted", "aborted"]})
    detail = fields.String(metadata={"description": "why the plan is in its state"})
    steps = fields.List(fields.Nested(PlanStepOut))
    on_success = fields.String()
    step_started_at = UTCDateTime()
    gates = fields.Dict(keys=fields.String(), values=fields.Nested(GateOut))
    figures = fields.Dict(allow_none=True, metadata={
        "description": "the step's figures of both arms the gates last judged (requests, weighed_requests, keys, "
                       "p99_ms, latency_by_rows …); null until the controller first looked"})


class RolloutOut(Schema):
    model = fields.String()
    alias = fields.String()
    started_at = UTCDateTime()
    started_by = fields.String()
    reason = fields.String()
    sticky_header = fields.String(allow_none=True)
    ended_at = UTCDateTime(allow_none=True)
    primary = fields.Nested(ServedFigures)
    canary = fields.Nested(CanaryFigures, allow_none=True)
    shadow = fields.Nested(ShadowFigures, allow_none=True)
    plan = fields.Nested(PlanOut, allow_none=True, metadata={
        "description": "the plan the rollout walks by itself; absent when a person sets the shares"})
