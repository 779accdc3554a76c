"""Versions: the list's arguments, an upload's form and metadata, a PATCH, and a version as answered."""
from marshmallow import Schema, fields, validate

from api.schemas.fields import FiniteNumber, TEXT_KEYS, OptionalReason, Text, UTCDateTime
from api.schemas.paging import PageArgs


SORT_KEY = validate.Regexp(
    r"^[-+]?(version|created_at|metrics\..+)$",
    error="unknown sort key: use version, created_at or metrics.<name>, with '-' for descending",
)


class VersionListArgs(PageArgs):
    sort = fields.String(load_default=None, validate=SORT_KEY,
                         metadata={"description": "version, created_at or metrics.<name>; '-' for descending"})
    include_archived = fields.Boolean(load_default=False)


class VersionPatch(Schema):
    """What may change on a version: its words, and the names of a boosted classifier's classes. Metrics,
    lineage and the rest are facts of the upload."""

    error_messages = {"unknown": "cannot be changed: a version's description, tags, intended_use, "
                                 "limitations and (an XGBoost or LightGBM classifier's, once) classes can, "
                                 "nothing else"}

    description = Text(validate=validate.Length(max=10_000))
    tags = fields.Dict(keys=Text(), values=Text(), metadata=TEXT_KEYS)
    intended_use = Text(validate=validate.Length(max=10_000),
                        metadata={"description": "model card: what the version is for, and for whom"})
    limitations = Text(validate=validate.Length(max=10_000),
                       metadata={"description": "model card: where it should not be trusted, known weaknesses"})
    classes = fields.List(fields.Raw(metadata={"type": ["string", "integer"]}),
                          validate=validate.Length(min=2, max=10_000),
                          metadata={"description": "an XGBoost or LightGBM classifier's class names, in the model's "
                                                   "order, while it answers 0 … k-1 (names are given once)"})
    reason = OptionalReason("the ledger's card_update (and classes) entry")


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
    classes = fields.List(fields.Raw(), load_default=None, validate=validate.Length(min=2, max=10_000),
                          metadata={"description": "an XGBoost or LightGBM classifier's classes, in the "
                                                   "model's order (0 … k-1 when left out)"})


class UploadForm(Schema):
    """The multipart body of an upload (documentation only: the view reads the two parts itself)."""

    artifact = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    metadata = fields.String(metadata={"description": "a JSON object: description, intended_use, limitations, metrics, "
                                                      "params, tags, lineage, feature_names, input_example, classes"})


class VersionOut(Schema):
    model = fields.Function(lambda v: v.model.name)
    version = fields.Integer(attribute="number")
    status = fields.String()
    kind = fields.String()
    task = fields.String()
    estimator = fields.String()
    framework = fields.String(metadata={"description": "the library the model comes from: scikit-learn, xgboost "
                                                       "or lightgbm"})
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
    explainable = fields.Boolean(allow_none=True, metadata={
        "description": "whether its rows can be explained (`explain`), as its upload found; null for versions "
                       "uploaded before this was recorded"})
    explainable_reason = fields.String(allow_none=True, metadata={
        "description": "why not, when explainable is false (such as one row's explanation costing more than "
                       "EXPLAIN_MAX_ROW_COST); asked to explain, the version answers 422 saying the same"})
    explain_row_cost = fields.Integer(allow_none=True, metadata={
        "description": "what one row's exact explanation costs, in node-points (a tree model's: its nodes × the "
                       "quadrature points its deepest path needs × its outputs); null for other kinds"})
    aliases = fields.List(fields.String(), attribute="alias_names")
    created_at = UTCDateTime()
    created_by = fields.String()
