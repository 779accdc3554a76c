"""Protected aliases: a policy's document, approval requests and their approvals, a break-glass move."""
from datetime import timezone

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.schemas.fields import FiniteNumber, JsonBoolean, OptionalReason, Reason, Text, UTCDateTime, WholeNumber
from api.schemas.paging import PageArgs
from api.schemas.plans import PlanRequest
from registry.access.tokens import ROLES
from registry.approvals.requests import STATES
from registry.governance.policy import CARD_FIELDS, MAX_APPROVALS
from registry.names import MAX_ID, TOKEN_NAME

INSTANT = {"format": "iso", "default_timezone": timezone.utc,
           "error_messages": {"invalid": "must be an ISO 8601 instant such as 2026-12-24T00:00:00Z"}}


class Movers(Schema):
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), validate=validate.Length(max=len(ROLES)),
                        metadata={"description": "roles whose tokens may move the alias (default admin and ci)"})
    tokens = fields.List(fields.String(validate=validate.Regexp(TOKEN_NAME)), validate=validate.Length(max=100),
                         metadata={"description": "token names that may move it (\"autopilot\": the rollout controller)"})
    groups = fields.List(fields.String(validate=validate.Length(min=1, max=255)), validate=validate.Length(max=100),
                         metadata={"description": "groups (the single sign-on provider's group claim) whose signed-in "
                                                  "people may move it from the dashboard; a token is in no group"})


class EvaluationRequirement(Schema):
    dataset = Text(required=True, validate=validate.Length(min=1, max=255),
                            metadata={"description": "the evaluation dataset's name or sha256"})
    metric = Text(required=True, validate=validate.Length(min=1, max=128))
    margin = FiniteNumber(load_default=0.0, validate=validate.Range(min=0),
                          metadata={"description": "how much better than the served version's score, at least"})
    higher_is_better = JsonBoolean(load_default=None, allow_none=True,
                                   metadata={"description": "null: from the metric's name (errors, losses: lower)"})


class Requirements(Schema):
    evaluation = fields.Nested(EvaluationRequirement)
    card = fields.List(fields.String(validate=validate.OneOf(CARD_FIELDS)), validate=validate.Length(max=len(CARD_FIELDS)))
    compatible_signature = JsonBoolean()
    rollout = JsonBoolean(metadata={"description": "a rollout plan of the version on this alias walked every step"})


class FreezeWindow(Schema):
    start = fields.AwareDateTime(required=True, data_key="from", **INSTANT)
    until = fields.AwareDateTime(required=True, **INSTANT)
    reason = OptionalReason()


class PolicyRequest(Schema):
    movers = fields.Nested(Movers)
    approvals = WholeNumber(load_default=0, validate=validate.Range(min=0, max=MAX_APPROVALS))
    require = fields.Nested(Requirements)
    freeze = fields.List(fields.Nested(FreezeWindow), validate=validate.Length(max=100))
    request_hours = WholeNumber(load_default=72, validate=validate.Range(min=1, max=24 * 90),
                                metadata={"description": "how long an approval request stays open"})
    reason = OptionalReason()


def policy_document(body: dict) -> dict:
    """The policy part of a loaded ``PolicyRequest`` (its freeze windows keyed ``from`` as stored)."""
    document = {key: value for key, value in body.items() if key != "reason"}
    if "freeze" in document:
        document["freeze"] = [{"from": w["start"], "until": w["until"], "reason": w["reason"]} for w in document["freeze"]]
    return document


class PolicyOut(Schema):
    model = fields.String()
    alias = fields.String()
    policy = fields.Dict()
    updated_by = fields.String()
    updated_at = UTCDateTime()


class ReasonRequest(Schema):
    reason = OptionalReason()


class RolloutAsked(Schema):
    percent = FiniteNumber(load_default=None, allow_none=True, validate=validate.Range(min=0, max=100, min_inclusive=False),
                           metadata={"description": "the canary's share of the alias's requests (no plan)"})
    plan = fields.Nested(PlanRequest, load_default=None, allow_none=True,
                         metadata={"description": "a plan the server walks (on_success: halt where approvals are needed)"})
    sticky_header = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=128))

    @validates_schema(pass_original=True)
    def _one_of(self, data, original, **kwargs):
        # What was sent, not what loaded: a plan refused for a step of its own is named there, not here.
        given = [key for key in ("percent", "plan") if isinstance(original, dict) and original.get(key) is not None]
        if len(given) != 1:
            raise ValidationError("give the canary's percent or a plan (one of them)", "percent")


class ApprovalRequestIn(Schema):
    version = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))
    reason = OptionalReason()
    rollout = fields.Nested(RolloutAsked, load_default=None, allow_none=True, metadata={
        "description": "ask for a canary of the version (a rollout) instead of a promote: its final approval starts it"})


class RejectRequest(Schema):
    reason = Reason("what the version lacks")


class BreakGlassRequest(Schema):
    version = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))
    reason = Reason("why the policy is bypassed")
    force = JsonBoolean(load_default=False)


class RequestArgs(PageArgs):
    state = fields.String(load_default=None, validate=validate.OneOf(STATES))


class ApprovalOut(Schema):
    approver = fields.String()
    reason = fields.String()
    at = UTCDateTime()
    policy_entry = fields.Integer(allow_none=True, metadata={
        "description": "the history entry (policy_set) of the policy the approval was given under"})
    counts = fields.Boolean(allow_none=True, metadata={
        "description": "while the request is open: whether the approval counts under the policy now (null once closed)"})
    set_aside = fields.String(allow_none=True, metadata={
        "description": "why it does not count (the policy changed in movers or require, or was lifted and set "
                       "again since); null when it counts"})


class RequestOut(Schema):
    id = fields.Integer()
    model = fields.String()
    alias = fields.String()
    version = fields.Integer()
    state = fields.String(metadata={"description": "open, done (the alias moved or the rollout started), rejected, "
                                                   "withdrawn (its requester's token was revoked) or expired"})
    reason = fields.String()
    requested_by = fields.String()
    opened_at = UTCDateTime()
    expires_at = UTCDateTime()
    closed_at = UTCDateTime(allow_none=True)
    closed_by = fields.String(allow_none=True)
    close_reason = fields.String()
    approvals = fields.List(fields.Nested(ApprovalOut))
    approvals_needed = fields.Integer()
    missing = fields.List(fields.Dict(), metadata={"description": "what the move still lacks: {rule, detail, …}"})
    evidence = fields.Dict(metadata={"description": "while open, what the version shows for each evidence rule beside "
                                                    "the served version: evaluation scores, card fields, signature differences"})
    event_id = fields.Integer(allow_none=True, metadata={"description": "the history entry of the move it made"})
    rollout = fields.Dict(allow_none=True, metadata={"description": "a request for a canary: what rollout it asks "
                                                                    "for (null: a promote)"})
