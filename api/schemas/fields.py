"""Field types every schema uses: UTC times, finite numbers, whole numbers that fit a column, text without NUL."""
import math
from datetime import timezone

from marshmallow import ValidationError, fields, validate

from registry.reasons import MAX_REASON, MIN_VISIBLE, reason_problem, written_problem


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


class JsonBoolean(fields.Boolean):
    """A JSON ``true`` or ``false`` in a body; ``0``, ``1``, ``"yes"`` and the other truthy words that
    marshmallow takes for a query string are refused, as the document's boolean says."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
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


# A reason's pattern in the OpenAPI document: no control character (Unicode's Cc) but a tab or a line break, the rule
# of registry.reasons.written_problem.
PLAIN_TEXT = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"


class _WrittenText(Text):
    """Text a person wrote, checked by a rule of :mod:`registry.reasons` (``rule``: the problem of a text, or None)."""

    rule = staticmethod(written_problem)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = self.rule(text)
        if problem is not None:
            raise ValidationError(problem)
        return text


class Reason(_WrittenText):
    """A mandatory reason: text a person wrote, at least ``MIN_VISIBLE`` visible characters (the rule of
    :mod:`registry.reasons`, which the dashboard and the use cases share), at most ``MAX_REASON``."""

    rule = staticmethod(reason_problem)

    def __init__(self, what: str):
        super().__init__(required=True, validate=validate.Length(min=MIN_VISIBLE, max=MAX_REASON), metadata={
            "pattern": PLAIN_TEXT, "description": f"mandatory: {what}, in at least {MIN_VISIBLE} visible characters (spaces, separators, "
                           "control and format characters such as a zero-width space do not count); kept in the history"})


class OptionalReason(_WrittenText):
    """An optional reason, kept where ``kept`` says: empty, or at most ``MAX_REASON`` characters of plain text (no
    control character but tabs and line breaks: :func:`registry.reasons.written_problem`)."""

    def __init__(self, kept: str = "the history"):
        super().__init__(load_default="", validate=validate.Length(max=MAX_REASON), metadata={
            "pattern": PLAIN_TEXT,
            "description": f"optional: why, kept in {kept}; plain text (no control characters but tabs and line breaks)"})


# What the OpenAPI document says of a dict whose keys are Text: apispec keeps only "x-" keys of a
# field's metadata, and ProblemDocs renames this one to propertyNames.
TEXT_KEYS = {"x-propertyNames": {"pattern": "^[^\\u0000]*$"}}
