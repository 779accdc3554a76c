"""Marshmallow schemas of the HTTP contract (../shared/API.md): what comes in and goes out."""
import math
from datetime import timezone

from marshmallow import Schema, ValidationError, fields, validate

from registry.names import DEFAULT_ALIAS
from registry.tokens import ROLES
from registry.paging import DEFAULT_PER_PAGE, MAX_PER_PAGE


class UTCDateTime(fields.DateTime):
    """ISO 8601 in UTC with a ``Z``: ``2026-11-20T12:00:00Z``."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FiniteNumber(fields.Field):
    """A JSON number that is finite; strings, booleans, NaN, infinities and huge integers are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise ValidationError("must be a finite number")
        return value


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range, e.g. 10**400
        return False


class Text(fields.String):
    """A string the databases can store: no NUL character, no lone UTF-16 surrogate."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("must not contain NUL (\\u0000) characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("must be valid Unicode (no lone \\ud800-\\udfff surrogates)") from None
        return text


# ---- requests -----------------------------------------------------------------------------

# Far beyond any real list, and small enough that page * per_page fits every database's OFFSET.
MAX_PAGE = 1_000_000


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=DEFAULT_PER_PAGE, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class VersionListArgs(PageArgs):
    sort = fields.String(load_default=None, metadata={"description": "version, created_at or metrics.<name>; '-' for descending"})
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


class AliasDeleteArgs(Schema):
    reason = Text(load_default="", validate=validate.Length(max=2_000))


class ModelPatch(Schema):
    description = Text(validate=validate.Length(max=10_000))
    tags = fields.Dict(keys=Text(), values=Text())


class VersionPatch(Schema):
    """What may change on a version: its words. Metrics, lineage and the rest are facts of the upload."""

    error_messages = {"unknown": "cannot be changed: a version's description and tags can, nothing else"}

    description = Text(validate=validate.Length(max=10_000))
    tags = fields.Dict(keys=Text(), values=Text())


SHA256_HEX = validate.Regexp(r"^[0-9a-fA-F]{64}$", error="must be a sha256: 64 hexadecimal characters")


class DatasetIn(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=255))
    sha256 = fields.String(required=True, validate=SHA256_HEX)
    rows = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2**62))


class EvaluationRequest(Schema):
    dataset = fields.Nested(DatasetIn, required=True)
    metrics = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=128)), values=FiniteNumber(), required=True,
        validate=validate.Length(min=1, error="give at least one metric"),
    )
    note = Text(load_default="", validate=validate.Length(max=2_000))


class DatasetEvaluationArgs(PageArgs):
    dataset = fields.String(required=True, validate=SHA256_HEX, metadata={"description": "the dataset's sha256"})
    sort = fields.String(load_default=None, metadata={"description": "version, created_at or metrics.<name>; '-' for descending"})
    include_archived = fields.Boolean(load_default=False)


class UploadMetadata(Schema):
    """The optional ``metadata`` form field of an upload, a JSON object."""

    description = Text(load_default="", validate=validate.Length(max=10_000))
    metrics = fields.Dict(keys=fields.String(), values=FiniteNumber(), load_default=dict)
    params = fields.Dict(keys=fields.String(), load_default=dict)
    tags = fields.Dict(keys=Text(), values=Text(), load_default=dict)
    lineage = fields.Dict(keys=fields.String(), load_default=dict)
    feature_names = fields.List(fields.String(validate=validate.Length(min=1)), load_default=None)
    input_example = fields.List(fields.Raw(), load_default=None, validate=validate.Length(min=1))


class UploadForm(Schema):
    """The multipart body of an upload (documentation only: the view reads the two parts itself)."""

    artifact = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    metadata = fields.String(metadata={"description": "a JSON object: description, metrics, params, tags, lineage, feature_names, input_example"})


class PromoteRequest(Schema):
    alias = fields.String(load_default=DEFAULT_ALIAS)
    reason = Text(load_default="", validate=validate.Length(max=2_000))
    force = fields.Boolean(load_default=False)


class RollbackRequest(Schema):
    alias = fields.String(load_default=DEFAULT_ALIAS)
    to_version = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    reason = Text(load_default="", validate=validate.Length(max=2_000))


class TokenRequest(Schema):
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


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
    at = UTCDateTime()


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
