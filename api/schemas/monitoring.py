"""Monitoring: a window of live quality and drift, and a version's drift reference."""
from datetime import timedelta

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

import config
from api.schemas.fields import UTCDateTime
from registry.monitoring.references import SOURCES as REFERENCE_SOURCES


def window_span(text: str) -> timedelta:
    """``30m``, ``24h`` or ``7d`` as a span; a ValidationError that says what to send otherwise."""
    try:
        return config.window_span(text)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


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


class ImportanceOut(Schema):
    model = fields.String()
    version = fields.Integer()
    window = fields.String()
    since = UTCDateTime()
    route = fields.String(allow_none=True, metadata={"description": "the rollout arm whose answers were read; null: all"})
    requests = fields.Integer(metadata={"description": "logged requests whose explanations were read"})
    rows = fields.Integer(metadata={"description": "the rows they explained"})
    space = fields.String(allow_none=True, metadata={"description": "prediction, probability or margin; null without rows"})
    columns = fields.Method("_columns", metadata={
        "type": "array", "items": {"type": "object"},
        "description": "the input columns, the most important first: {name, mean_abs: the mean absolute attribution "
                       "over the rows (summed over the classes where the space has a value per class), share: its "
                       "share of the columns' sum}"})

    def _columns(self, found) -> list[dict]:
        shares = found.shares
        return [{"name": name, "mean_abs": value, "share": shares[name]} for name, value in found.columns.items()]


class AttributionDriftOut(Schema):
    alias = fields.String()
    primary = fields.Nested(ImportanceOut, metadata={"description": "the primary version over its primary answers"})
    canary = fields.Nested(ImportanceOut, metadata={"description": "the canary version over its canary answers"})
    distance = fields.Float(allow_none=True, metadata={
        "description": "total variation distance between the two arms' shares, 0 to 1; null until each arm has "
                       "min_rows explained rows in the window"})
    threshold = fields.Float(metadata={"description": "ATTRIBUTION_DRIFT"})
    min_rows = fields.Integer(metadata={"description": "ATTRIBUTION_MIN_ROWS"})
    drifted = fields.Boolean()
    moved = fields.List(fields.String(), metadata={"description": "the columns whose share moved, the most first"})


class VersionImportanceOut(ImportanceOut):
    rollouts = fields.List(fields.Nested(AttributionDriftOut), metadata={
        "description": "for each running rollout the version is the primary or the canary of: both arms' importance "
                       "over their own answers, and their attribution drift"})
