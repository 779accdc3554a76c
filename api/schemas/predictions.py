"""Predictions as answered, the prediction log's entries, and labels sent back as feedback."""
from datetime import timezone

from marshmallow import Schema, fields, validate

from api import request_ids
from api.schemas.fields import UTCDateTime
from registry.monitoring.feedback import MAX_ITEMS as MAX_FEEDBACK_ITEMS
from registry.names import MAX_ID, MAX_ROW_ID


class PredictionOut(Schema):
    model = fields.String()
    version = fields.Integer()
    predictions = fields.List(fields.Raw())
    probabilities = fields.List(fields.List(fields.Float()))
    classes = fields.List(fields.Raw())
    explanations = fields.List(fields.Dict(), metadata={
        "description": "with explain: per row {base_value, values: {input column: attribution}}; base_value + "
                       "the sum of values is the answer in explanation_space (a list per class where it has several)"})
    explanation_space = fields.String(metadata={
        "description": "prediction (regressors), probability (trees and forests that classify: one value per class)"
                       " or margin (logistic and boosted classifiers: log-odds, per class for more than two)"})
    explanation_baseline = fields.String(metadata={
        "description": "what the values are measured from: covers (trees: the training data as the nodes' covers "
                       "record it), reference (a linear version's drift-reference mean) or zeros (its features' "
                       "all-zeros row)"})
    explanation_columns = fields.String(metadata={
        "description": "transformed: a Pipeline step mixes input columns, so values are per transformed feature"})
    explanation_note = fields.String()


class LoggedPredictionArgs(Schema):
    version = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    since = fields.AwareDateTime(default_timezone=timezone.utc, metadata={"description": "ISO 8601; from this time on"})
    until = fields.AwareDateTime(default_timezone=timezone.utc, metadata={"description": "ISO 8601; before this time"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.Integer(validate=validate.Range(min=1, max=MAX_ROW_ID),
                            metadata={"description": "next_cursor of the page before"})


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
    trace_id = fields.String(allow_none=True, metadata={
        "description": "the request's trace id (32 hex digits) when tracing was on: its spans in the trace backend"})
    explanations = fields.Dict(allow_none=True, dump_default=None, metadata={
        "description": "when the model's prediction_log.explain drew this answer: {space, columns, base_value, values: "
                       "[[one per column (a list per class where the space has several)], … one per row]}; "
                       "base_value + the sum of a row's values is its answer in space. null otherwise"})


class ExportedToOut(Schema):
    location = fields.String(metadata={"description": "the model's folder in PREDICTION_LOG_EXPORT: "
                                                      "model=<name>/day=YYYY-MM-DD/part-<id>.parquet"})
    manifest = fields.String(metadata={"description": "the JSON file that says what each Parquet file holds"})
    rows = fields.Integer(metadata={"description": "rows exported so far"})
    before = UTCDateTime(allow_none=True, metadata={
        "description": "every row answered before this went to the lake (the database may still hold some of them)"})


class LoggedPageOut(Schema):
    items = fields.List(fields.Nested(LoggedPredictionOut))
    next_cursor = fields.Integer(allow_none=True)
    exported_to = fields.Nested(ExportedToOut, allow_none=True, dump_default=None, metadata={
        "description": "where the model's older rows went (PREDICTION_LOG_EXPORT), read with any Parquet reader; "
                       "null while none were exported. This page answers from the database's window only."})


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
