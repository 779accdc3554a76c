"""Batch runs: a finished scoring job as a client reports it, and as the registry answers it."""
from datetime import datetime, timezone

from marshmallow import Schema, fields, validate

from api.schemas.fields import Text, UTCDateTime, WholeNumber
from registry.batch.tables import ENGINES, STATUSES


MAX_PATHS = 100  # inputs or outputs named by one run (globs count as one)
# Times a job can have run at (and that every database and time zone conversion holds).
WHEN = validate.Range(min=datetime(2000, 1, 1, tzinfo=timezone.utc), max=datetime(9000, 1, 1, tzinfo=timezone.utc),
                      error="must be between 2000 and 9000, with its time zone (2026-11-25T10:00:00Z)")


def _paths(minimum: int) -> fields.List:
    given = {"required": True} if minimum else {"load_default": list}
    return fields.List(Text(validate=validate.Length(min=1, max=2048)), **given,
                       validate=validate.Length(min=minimum, max=MAX_PATHS,
                                                error=f"give {minimum} to {MAX_PATHS} paths or globs"))


class BatchRunRequest(Schema):
    alias = fields.String(load_default=None, allow_none=True,
                          metadata={"description": "the alias the job was planned from, if any"})
    engine = fields.String(required=True, validate=validate.OneOf(ENGINES))
    inputs = _paths(1)
    outputs = _paths(0)
    rows = WholeNumber(required=True, validate=validate.Range(min=0, max=2**62))
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    detail = Text(load_default="", validate=validate.Length(max=2_000),
                  metadata={"description": "why a failed run failed: its first bad row"})
    started_at = fields.AwareDateTime(required=True, validate=WHEN)
    finished_at = fields.AwareDateTime(required=True, validate=WHEN)


class BatchRunOut(Schema):
    id = fields.Integer()
    model = fields.Function(lambda run: run.version.model.name)
    version = fields.Integer(attribute="number")
    alias = fields.String(allow_none=True)
    engine = fields.String()
    inputs = fields.List(fields.String())
    outputs = fields.List(fields.String())
    rows = fields.Integer()
    status = fields.String()
    detail = fields.String()
    started_at = UTCDateTime()
    finished_at = UTCDateTime()
    created_at = UTCDateTime()
    created_by = fields.String()
