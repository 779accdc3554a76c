"""Marshmallow schemas of the HTTP contract (../shared/API.md): what comes in and goes out."""
import json
import math
import re
from datetime import timedelta, timezone

from flask import current_app
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from api import request_ids
from api.plan_schemas import PlanRequest, PlanStepOut
from registry.access.tokens import ROLES
from registry.aliases.rollouts import HEADER_NAME
from registry.events.outbox import EVENT_TYPES
from registry.monitoring.feedback import MAX_ITEMS as MAX_FEEDBACK_ITEMS
from registry.monitoring.references import SOURCES as REFERENCE_SOURCES
from registry.names import ALIAS_NAME, DEFAULT_ALIAS, MAX_ID, TOKEN_NAME
from registry.paging import DEFAULT_PER_PAGE, MAX_PER_PAGE


class UTCDateTime(fields.DateTime):
    """ISO 8601 in UTC with a ``Z``: ``2026-11-20T12:00:00Z``."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FiniteNumber(fields.Float):
    """A JSON number that is finite; strings, booleans, NaN, infinities and huge integers are refused
    (a number to the OpenAPI document; it keeps the value as sent, int or float)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise ValidationError("must be a finite number")
        return value


class WholeNumber(fields.Integer):
    """A JSON integer: ``3``, or ``3.0`` as JSON Schema counts it; strings, booleans and fractions are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("must be a whole number")
        return super()._deserialize(value, attr, data, **kwargs)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range, e.g. 10**400
        return False


class Text(fields.String):
    """A string the databases can store: no NUL character, no lone UTF-16 surrogate."""

    def __init__(self, *args, metadata: dict | None = None, **kwargs):
        super().__init__(*args, metadata={"pattern": "^[^\\u0000]*$", **(metadata or {})}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("must not contain NUL (\\u0000) characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("must be valid Unicode (no lone \\ud800-\\udfff surrogates)") from None
        return text


# What the OpenAPI document says of a dict whose keys are Text: apispec keeps only "x-" keys of a
# field's metadata, and ProblemDocs renames this one to propertyNames.
TEXT_KEYS = {"x-propertyNames": {"pattern": "^[^\\u0000]*$"}}


# ---- requests -----------------------------------------------------------------------------

# Far beyond any real list, and small enough that page * per_page fits every database's OFFSET.
MAX_PAGE = 1_000_000


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=DEFAULT_PER_PAGE, validate=validate.Range(min=1, max=MAX_PER_PAGE))


SORT_KEY = validate.Regexp(
    r"^[-+]?(version|created_at|metrics\..+)$",
    error="unknown sort key: use version, created_at or metrics.<name>, with '-' for descending",
)
ALIAS = {"pattern": ALIAS_NAME.pattern, "description": "1-64 lowercase letters, digits, '_' or '-', starting with a letter"}


class VersionListArgs(PageArgs):
    sort = fields.String(load_default=None, validate=SORT_KEY,
                         metadata={"description": "version, created_at or metrics.<name>; '-' for descending"})
    include_archived = fields.Boolean(load_default=False)


class HistoryArgs(PageArgs):
    alias = Text(load_default=None)


class AliasesArgs(Schema):
    at = fields.AwareDateTime(
        format="iso",
        default_timezone=timezone.utc,
        load_default=None,
        metadata={"description": "an ISO 8601 instant (Z or an offset; without one, UTC): the alias map as it was then"},
        error_messages={"invalid": "must be an ISO 8601 instant such as 2026-11-20T10:00:00Z "
                                   "(or with an offset, its '+' sent as %2B in a URL)"},
    )


class ReasonArgs(Schema):
    """``?reason=`` of a DELETE (alias delete, archive), kept in the history or the webhook event."""

    reason = Text(load_default="", validate=validate.Length(max=2_000))


class PredictionLogPatch(Schema):
    sample = fields.Float(
        required=True, allow_none=True, validate=validate.Range(0, 1),
        metadata={"description": "the share of requests logged, 0 to 1 (errors always are); null: PREDICTION_LOG_SAMPLE"},
    )


class ModelPatch(Schema):
    description = Text(validate=validate.Length(max=10_000))
    tags = fields.Dict(keys=Text(), values=Text(), metadata=TEXT_KEYS)
    prediction_log = fields.Nested(PredictionLogPatch)


class VersionPatch(Schema):
    """What may change on a version: its words. Metrics, lineage and the rest are facts of the upload."""

    error_messages = {"unknown": "cannot be changed: a version's description, tags, intended_use and "
                                 "limitations can, nothing else"}

    description = Text(validate=validate.Length(max=10_000))
    tags = fields.Dict(keys=Text(), values=Text(), metadata=TEXT_KEYS)
    intended_use = Text(validate=validate.Length(max=10_000),
                        metadata={"description": "model card: what the version is for, and for whom"})
    limitations = Text(validate=validate.Length(max=10_000),
                       metadata={"description": "model card: where it should not be trusted, known weaknesses"})


SHA256_HEX = validate.Regexp(r"^[0-9a-fA-F]{64}$", error="must be a sha256: 64 hexadecimal characters")


class DatasetIn(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=255))
    sha256 = fields.String(required=True, validate=SHA256_HEX)
    rows = WholeNumber(required=True, validate=validate.Range(min=1, max=2**62))


class EvaluationRequest(Schema):
    dataset = fields.Nested(DatasetIn, required=True)
    metrics = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=128)), values=FiniteNumber(), required=True,
        validate=validate.Length(min=1, error="give at least one metric"), metadata={"minProperties": 1},
    )
    note = Text(load_default="", validate=validate.Length(max=2_000))


class DatasetEvaluationArgs(PageArgs):
    dataset = fields.String(required=True, validate=SHA256_HEX, metadata={"description": "the dataset's sha256"})
    sort = fields.String(load_default=None, validate=SORT_KEY,
                         metadata={"description": "version, created_at or metrics.<name>; '-' for descending"})
    include_archived = fields.Boolean(load_default=False)


class UploadMetadata(Schema):
    """The optional ``metadata`` form field of an upload, a JSON object."""

    description = Text(load_default="", validate=validate.Length(max=10_000))
    intended_use = Text(load_default="", validate=validate.Length(max=10_000))
    limitations = Text(load_default="", validate=validate.Length(max=10_000))
    metrics = fields.Dict(keys=fields.String(), values=FiniteNumber(), load_default=dict)
    params = fields.Dict(keys=fields.String(), load_default=dict)
    tags = fields.Dict(keys=Text(), values=Text(), load_default=dict, metadata=TEXT_KEYS)
    lineage = fields.Dict(keys=fields.String(), load_default=dict)
    feature_names = fields.List(fields.String(validate=validate.Length(min=1)), load_default=None)
    input_example = fields.List(fields.Raw(), load_default=None, validate=validate.Length(min=1))


class UploadForm(Schema):
    """The multipart body of an upload (documentation only: the view reads the two parts itself)."""

    artifact = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    metadata = fields.String(metadata={"description": "a JSON object: description, intended_use, limitations, metrics, "
                                                      "params, tags, lineage, feature_names, input_example"})


class PromoteRequest(Schema):
    alias = fields.String(load_default=DEFAULT_ALIAS, metadata=ALIAS)
    reason = Text(load_default="", validate=validate.Length(max=2_000))
    force = fields.Boolean(load_default=False)


class RollbackRequest(Schema):
    alias = fields.String(load_default=DEFAULT_ALIAS, metadata=ALIAS)
    to_version = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_ID))
    reason = Text(load_default="", validate=validate.Length(max=2_000))


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
    reason = Text(load_default="", validate=validate.Length(max=2_000))
    force = fields.Boolean(load_default=False)
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
    reason = Text(load_default="", validate=validate.Length(max=2_000))


class RolloutEndRequest(Schema):
    reason = Text(load_default="", validate=validate.Length(max=2_000))


class TokenRequest(Schema):
    name = fields.String(required=True, metadata={"pattern": TOKEN_NAME.pattern})
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


WEBHOOK_URL = {"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "description": "http(s) URL of a public host (unless WEBHOOK_ALLOW_PRIVATE)"}
EVENT_TYPE = fields.String(metadata={"enum": ["*", *EVENT_TYPES]})


class WebhookRequest(Schema):
    url = Text(required=True, metadata=WEBHOOK_URL)
    events = fields.List(EVENT_TYPE, required=True, metadata={"description": 'event types, or ["*"] for all'})
    description = Text(load_default="", validate=validate.Length(max=2_000))


class WebhookPatch(Schema):
    url = Text(metadata=WEBHOOK_URL)
    events = fields.List(EVENT_TYPE)
    active = fields.Boolean()
    description = Text(validate=validate.Length(max=2_000))


class SecretRotation(Schema):
    grace_hours = fields.Float(
        load_default=24.0, validate=validate.Range(min=0, max=720),
        metadata={"description": "how long the old secret keeps signing deliveries beside the new one (0 to 720)"},
    )


# ---- responses ----------------------------------------------------------------------------

class ModelOut(Schema):
    name = fields.String()
    description = fields.String()
    tags = fields.Dict()
    latest_version = fields.Integer(allow_none=True)
    aliases = fields.Dict(keys=fields.String(), values=fields.Integer())
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class ModelDetailOut(ModelOut):
    version_count = fields.Integer()
    prediction_log = fields.Method("_prediction_log", metadata={"description": "the share of requests logged"})

    def _prediction_log(self, model) -> dict:
        own = model.prediction_log_sample
        return {"sample": current_app.config["PREDICTION_LOG_SAMPLE"] if own is None else own}


class VersionOut(Schema):
    model = fields.Function(lambda v: v.model.name)
    version = fields.Integer(attribute="number")
    status = fields.String()
    kind = fields.String()
    task = fields.String()
    estimator = fields.String()
    steps = fields.List(fields.String(), allow_none=True)
    signature = fields.Dict()
    metrics = fields.Dict()
    params = fields.Dict()
    tags = fields.Dict()
    description = fields.String()
    intended_use = fields.String()
    limitations = fields.String()
    lineage = fields.Dict()
    input_example = fields.List(fields.Raw(), allow_none=True)
    sha256 = fields.String()
    size_bytes = fields.Integer()
    sklearn_version = fields.String(allow_none=True)
    aliases = fields.List(fields.String(), attribute="alias_names")
    created_at = UTCDateTime()
    created_by = fields.String()


class MoveOut(Schema):
    model = fields.String()
    alias = fields.String()
    version = fields.Integer()
    previous_version = fields.Integer(allow_none=True)
    event_id = fields.Integer(allow_none=True)


class EventOut(Schema):
    id = fields.Integer()
    alias = fields.String()
    from_version = fields.Integer(allow_none=True)
    to_version = fields.Integer(allow_none=True)
    action = fields.String()
    actor = fields.String()
    reason = fields.String()
    forced = fields.Boolean()
    reverts = fields.Integer(
        attribute="reverts_event_id", allow_none=True,
        metadata={"description": "a rollback's: the id of the oldest promote it undid (it and every later one "
                                 "of the alias are undone); null for other actions"},
    )
    at = UTCDateTime()
    details = fields.Dict(allow_none=True, metadata={"description": "a rollout event's versions, percents and figures"})


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


class EvaluationOut(Schema):
    id = fields.Integer()
    model = fields.Function(lambda e: e.version.model.name)
    version = fields.Integer(attribute="number")
    dataset = fields.Function(lambda e: {"name": e.dataset_name, "sha256": e.dataset_sha256, "rows": e.rows})
    metrics = fields.Dict()
    note = fields.String()
    created_at = UTCDateTime()
    created_by = fields.String()


class TokenOut(Schema):
    name = fields.String()
    role = fields.String()
    created_at = UTCDateTime()
    last_used_at = UTCDateTime(allow_none=True)


class TokenCreatedOut(Schema):
    name = fields.String()
    role = fields.String()
    token = fields.String()
    created_at = UTCDateTime()


class WebhookOut(Schema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    description = fields.String()
    active = fields.Boolean()
    failures_in_a_row = fields.Integer(metadata={"description": "attempts that failed in a row (0 after a success)"})
    paused_until = UTCDateTime(
        allow_none=True,
        metadata={"description": "after 5 failures in a row nothing is sent to the endpoint until then (doubling)"},
    )
    created_by = fields.String()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class WebhookCreatedOut(WebhookOut):
    secret = fields.String(metadata={"description": "whsec_<base64>: verify signatures with it; shown only here"})


class WebhookRotatedOut(WebhookCreatedOut):
    previous_secret_expires_at = UTCDateTime(
        attribute="previous_secret_until",
        metadata={"description": "until then every delivery is signed with the old secret too"},
    )


class DeliveryOut(Schema):
    id = fields.Integer()
    webhook_id = fields.Integer(attribute="subscription_id")
    event_id = fields.Function(lambda d: d.event.uid, metadata={"description": "the webhook-id header"})
    event_type = fields.Function(lambda d: d.event.type)
    status = fields.String(metadata={"description": "pending, delivered or failed"})
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = UTCDateTime(allow_none=True)
    delivered_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()


class AttemptOut(Schema):
    at = UTCDateTime()
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()


class DeliveryDetailOut(DeliveryOut):
    payload = fields.Function(lambda d: json.loads(d.event.body))
    attempt_log = fields.List(fields.Nested(AttemptOut))


class PredictionOut(Schema):
    model = fields.String()
    version = fields.Integer()
    predictions = fields.List(fields.Raw())
    probabilities = fields.List(fields.List(fields.Float()))
    classes = fields.List(fields.Raw())


def page_of(item_schema: type[Schema]) -> type[Schema]:
    """A list-response schema ``{"items", "total", "page", "per_page"}`` of ``item_schema``."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema)),
            "total": fields.Integer(),
            "page": fields.Integer(),
            "per_page": fields.Integer(),
        },
        name=f"{item_schema.__name__}Page",
    )


class LoggedPredictionArgs(Schema):
    version = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    since = fields.AwareDateTime(default_timezone=timezone.utc, metadata={"description": "ISO 8601; from this time on"})
    until = fields.AwareDateTime(default_timezone=timezone.utc, metadata={"description": "ISO 8601; before this time"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.Integer(validate=validate.Range(min=1), metadata={"description": "next_cursor of the page before"})


class LoggedPredictionOut(Schema):
    request_id = fields.String()
    version = fields.Integer()
    alias = fields.String(allow_none=True)
    route = fields.String(allow_none=True)
    inputs = fields.Raw(allow_none=True)
    outputs = fields.Raw(allow_none=True)
    latency_ms = fields.Float()
    status = fields.Integer()
    at = UTCDateTime()
    label = fields.Raw(allow_none=True, dump_default=None)
    labelled_at = UTCDateTime(allow_none=True)


class LoggedPageOut(Schema):
    items = fields.List(fields.Nested(LoggedPredictionOut))
    next_cursor = fields.Integer(allow_none=True)


class FeedbackItem(Schema):
    request_id = fields.String(required=True, validate=validate.Regexp(
        request_ids.SAFE, error=f"a request id is {request_ids.SAFE_RULE}"))
    label = fields.Raw(required=True, allow_none=False, metadata={"description": "the truth: a class or a number, "
                                                                  "or a list of them for a request of several rows"})


class FeedbackIn(Schema):
    items = fields.List(fields.Nested(FeedbackItem), required=True, validate=validate.Length(min=1, max=MAX_FEEDBACK_ITEMS))


class FeedbackError(Schema):
    index = fields.Integer()
    request_id = fields.String()
    status = fields.Integer()
    detail = fields.String()


class FeedbackOut(Schema):
    applied = fields.Integer()
    replaced = fields.Integer()
    errors = fields.List(fields.Nested(FeedbackError))


WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
WINDOW_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_WINDOW = timedelta(days=366)


def window_span(text: str) -> timedelta:
    """``30m``, ``24h`` or ``7d`` as a span; a ValidationError that says what to send otherwise."""
    found = WINDOW.match(text)
    if found is None:
        raise ValidationError("a window is a whole number of minutes, hours or days: 30m, 24h, 7d")
    span = int(found.group(1)) * WINDOW_UNITS[found.group(2)]
    if span > MAX_WINDOW:
        raise ValidationError("a window is at most 366 days")
    return span


class MonitoringArgs(Schema):
    window = fields.String(load_default="24h", validate=window_span, metadata={"description": "30m, 24h, 7d …"})


class QualityOut(Schema):
    metric = fields.String(metadata={"description": "accuracy (classifiers) or mae (regressors)"})
    value = fields.Float()
    ci_low = fields.Float()
    ci_high = fields.Float()
    rows = fields.Integer(metadata={"description": "labelled rows it is computed on"})
    rmse = fields.Float(allow_none=True)


class ReferenceIn(Schema):
    """Where the rows come from, and the rows (up to 10,000) in any JSON predict body shape."""

    class Meta:
        unknown = INCLUDE  # instances, dataframe_split or dataframe_records, checked against the signature

    source = fields.String(required=True, validate=validate.OneOf(REFERENCE_SOURCES), metadata={
        "description": "training or evaluation: the rows the version was trained or evaluated on"})


class ProfileOut(Schema):
    kind = fields.String(metadata={"description": "numeric (bins between deciles) or categorical (values)"})
    edges = fields.List(fields.Float(), allow_none=True)
    values = fields.List(fields.Raw(), allow_none=True)
    counts = fields.List(fields.Integer())


class ReferenceOut(Schema):
    model = fields.String()
    version = fields.Integer()
    source = fields.String()
    rows = fields.Integer()
    features = fields.Dict(keys=fields.String(), values=fields.Nested(ProfileOut))
    predictions = fields.Nested(ProfileOut)
    created_at = UTCDateTime()
    created_by = fields.String()


class RouteFiguresOut(Schema):
    requests = fields.Integer()
    labelled = fields.Integer()
    quality = fields.Nested(QualityOut, allow_none=True)


class MonitoringOut(Schema):
    model = fields.String()
    version = fields.Integer()
    window = fields.String()
    since = UTCDateTime()
    requests = fields.Integer()
    labelled = fields.Integer()
    label_delay_p50_s = fields.Float(allow_none=True)
    quality = fields.Nested(QualityOut, allow_none=True)
    drift = fields.Dict(allow_none=True, metadata={"description": "reference, reference_rows, recent_rows, features: "
                                                   "{name: {psi, p_value, test, drifted}}, predictions: {…}"})
    drift_detail = fields.String(allow_none=True, metadata={
        "description": "why drift is null (a reference below DRIFT_MIN_REFERENCE_ROWS, too few rows yet) and what "
                       "would have it judged; null when drift is"})
    routes = fields.Dict(keys=fields.String(), values=fields.Nested(RouteFiguresOut), metadata={
        "description": "the same figures by the route that reached the version: primary, canary and shadow "
                       "(rollout arms), direct (asked by version number)"})
