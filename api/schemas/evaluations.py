"""Evaluations: a version's metrics on a named dataset, recorded and answered."""
from marshmallow import Schema, fields, validate

from api.schemas.fields import FiniteNumber, Text, UTCDateTime, WholeNumber
from api.schemas.paging import PageArgs
from api.schemas.versions import SORT_KEY


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


class EvaluationOut(Schema):
    id = fields.Integer()
    model = fields.Function(lambda e: e.version.model.name)
    version = fields.Integer(attribute="number")
    dataset = fields.Function(lambda e: {"name": e.dataset_name, "sha256": e.dataset_sha256, "rows": e.rows})
    metrics = fields.Dict()
    note = fields.String()
    created_at = UTCDateTime()
    created_by = fields.String()
