"""Models: the changes a PATCH makes, and a model as answered."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.schemas.fields import TEXT_KEYS, FiniteNumber, OptionalReason, Text, UTCDateTime
from api.settings import settings_of


class PredictionLogPatch(Schema):
    class Meta:
        openapi = {"minProperties": 1}

    sample = fields.Float(
        allow_none=True, validate=validate.Range(0, 1),
        metadata={"description": "the share of requests logged, 0 to 1 (errors always are); null: PREDICTION_LOG_SAMPLE"},
    )
    max_mb = fields.Float(
        allow_none=True, validate=validate.Range(min=0, min_inclusive=False),
        metadata={"exclusiveMinimum": 0,
                  "description": "the most this model's log may hold, in MB, when less than its fair share of "
                                 "PREDICTION_LOG_MAX_MB; null: its fair share"},
    )

    explain = FiniteNumber(
        allow_none=True, validate=validate.Range(0, 1, error="explain is a share of the logged answers, from 0 to 1"),
        metadata={"minimum": 0, "maximum": 1,
                  "description": "the share of the logged answers whose explanations are computed off the request path "
                                 "and kept with them, 0 to 1 (1: every logged answer; a version that cannot be "
                                 "explained logs none); null or 0: none"},
    )

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise ValidationError("give sample, max_mb, explain or any of them", "_schema")


class ModelPatch(Schema):
    description = Text(validate=validate.Length(max=10_000))
    tags = fields.Dict(keys=Text(), values=Text(), metadata=TEXT_KEYS)
    prediction_log = fields.Nested(PredictionLogPatch)
    reason = OptionalReason("the ledger's model_update entry")


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
    prediction_log = fields.Method("_prediction_log", metadata={
        "description": "the share of requests logged, the most its log may hold in MB (null: its fair share "
                       "of PREDICTION_LOG_MAX_MB), and the share of logged answers explained (0: none)"})

    def _prediction_log(self, model) -> dict:
        own = model.prediction_log_sample
        return {"sample": settings_of().prediction_log.sample if own is None else own,
                "max_mb": model.prediction_log_max_mb, "explain": model.prediction_log_explain or 0.0}
