"""The rollout plan's shape in the OpenAPI document: steps, gates and what follows the last step.

The registry checks a plan field by field itself (``registry.aliases.plans``, whose messages name
every wrong field at once), so these fields carry what a caller needs to read, and pass the values
through as sent: a wrong type is answered by the domain's message, not marshmallow's.
"""
from marshmallow import INCLUDE, Schema, fields

from registry.aliases.plans import DEFAULT_GATES, DEFAULT_STEPS, MAX_MIN_REQUESTS, MAX_MINUTES, MAX_STEPS, ON_SUCCESS


class _PassedThrough(Schema):
    class Meta:
        unknown = INCLUDE  # the domain names an unknown field; here it is kept for it to see


class PlanStep(_PassedThrough):
    percent = fields.Raw(required=True, metadata={
        "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100,
        "description": "the canary's share at this step, more than the step before"})
    min_requests = fields.Raw(metadata={
        "type": "integer", "minimum": 1, "maximum": MAX_MIN_REQUESTS, "default": 1000,
        "description": "requests (or, with a sticky header, keys) each arm needs before the gates may pass the step"})
    max_minutes = fields.Raw(metadata={
        "type": "number", "exclusiveMinimum": 0, "maximum": MAX_MINUTES, "default": 60,
        "description": "the step's time limit: past it without passing, the plan halts for a person"})


class ErrorRateGate(_PassedThrough):
    max_increase = fields.Raw(required=True, metadata={
        "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
        "description": "the rise of the canary's error rate over the primary's allowed (0.01: one point)"})


class LatencyGate(_PassedThrough):
    max_p99_ratio = fields.Raw(required=True, metadata={
        "type": "number", "minimum": 1, "maximum": 100,
        "description": "the canary's p99 over the primary's allowed, per batch-size class"})


class AgreementGate(_PassedThrough):
    min = fields.Raw(metadata={
        "type": "number", "exclusiveMinimum": 0, "maximum": 1,
        "description": "a classifier's: the share of rows both versions answer alike"})
    max_mean_abs_diff = fields.Raw(metadata={
        "type": "number", "minimum": 0,
        "description": "a regressor's: the mean absolute difference from the primary's answers allowed"})


class QualityGate(_PassedThrough):
    max_drop = fields.Raw(required=True, metadata={
        "type": "number", "minimum": 0,
        "description": "how much worse the canary's live quality may be (accuracy points, or MAE)"})


class PlanGates(_PassedThrough):
    error_rate = fields.Nested(ErrorRateGate, allow_none=True)
    latency = fields.Nested(LatencyGate, allow_none=True)
    agreement = fields.Nested(AgreementGate, allow_none=True, metadata={
        "description": "on by default for a classifier ({min: 0.9}); give min or max_mean_abs_diff by the task"})
    quality = fields.Nested(QualityGate, allow_none=True)


class PlanRequest(_PassedThrough):
    steps = fields.List(fields.Nested(PlanStep), metadata={
        "maxItems": MAX_STEPS, "minItems": 1, "default": list(DEFAULT_STEPS)})
    gates = fields.Nested(PlanGates, metadata={
        "description": "null turns a gate off; a gate left out keeps its default", "default": DEFAULT_GATES})
    on_success = fields.Raw(metadata={"type": "string", "enum": list(ON_SUCCESS), "default": "promote",
                                      "description": "after the last step: promote the canary, or halt for a person"})


class PlanStepOut(Schema):
    percent = fields.Float()
    min_requests = fields.Integer()
    max_minutes = fields.Float()
