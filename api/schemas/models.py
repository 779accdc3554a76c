"""Models: the changes a PATCH makes, and a model as answered."""
from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.schemas.fields import TEXT_KEYS, Text, UTCDateTime


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

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise ValidationError("give sample, max_mb or both", "_schema")


class ModelPatch(Schema):
    description = Text(validate=validate.Length(max=10_000))
    tags = fields.Dict(keys=Text(), values=Text(), metadata=TEXT_KEYS)
    prediction_log = fields.Nested(PredictionLogPatch)


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
        "description": "the share of requests logged, and the most its log may hold in MB (null: its fair share "
                       "of PREDICTION_LOG_MAX_MB)"})

    def _prediction_log(self, model) -> dict:
        own = model.prediction_log_sample
        return {"sample": current_app.config["PREDICTION_LOG_SAMPLE"] if own is None else own,
                "max_mb": model.prediction_log_max_mb}
