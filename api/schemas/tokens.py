"""API tokens: created with a role, listed without their secret."""
from marshmallow import Schema, fields, validate

from api.schemas.fields import UTCDateTime
from registry.access.tokens import ROLES
from registry.names import TOKEN_NAME


class TokenRequest(Schema):
    name = fields.String(required=True, metadata={"pattern": TOKEN_NAME.pattern})
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


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
