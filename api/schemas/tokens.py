"""API tokens: created with a role (and, to act on some models only, scopes), listed without their secret."""
from marshmallow import Schema, fields, validate

from api.schemas.fields import OptionalReason, Text, UTCDateTime
from registry.access.scopes import RIGHTS
from registry.access.tokens import MAX_OWNER, ROLES
from registry.names import TOKEN_NAME

SCOPES = {
    "description": "null or left out: the role's rights on every model. Else grants, each some of the role's "
                   "rights on the models its patterns name (a name, or a prefix ending in *: team-a-*); "
                   "on any other model the token has no right. Admin tokens are never scoped.",
    "example": [{"models": ["team-a-*"], "rights": ["read", "predict", "upload", "promote"]}],
}


GRANT = {"type": "object", "required": ["models", "rights"], "properties": {
    "models": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "rights": {"type": "array", "items": {"type": "string", "enum": list(RIGHTS)}, "minItems": 1}}}


class Grant(Schema):
    models = fields.List(fields.String(), required=True)
    rights = fields.List(fields.String(validate=validate.OneOf(RIGHTS)), required=True)


class TokenRequest(Schema):
    name = fields.String(required=True, metadata={"pattern": TOKEN_NAME.pattern})
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    owner = Text(load_default=None, validate=validate.Length(min=1, max=MAX_OWNER), metadata={
        "description": "the person the token belongs to (an e-mail, a name; default: the token's name). Approvals "
                       "count owners: one approval each, never the requester's or the uploader's"})
    reason = OptionalReason("the ledger's token_create entry")
    # One grant or a list of them, checked by the domain (registry.access.scopes), whose messages name each place.
    scopes = fields.Raw(load_default=None, allow_none=True, metadata={
        **SCOPES, "oneOf": [GRANT, {"type": "array", "items": GRANT, "minItems": 1}, {"type": "null"}]})


class TokenOut(Schema):
    name = fields.String()
    role = fields.String()
    owner = fields.String()
    scopes = fields.List(fields.Nested(Grant), allow_none=True, metadata=SCOPES)
    created_at = UTCDateTime()
    last_used_at = UTCDateTime(allow_none=True)


class TokenCreatedOut(Schema):
    name = fields.String()
    role = fields.String()
    owner = fields.String()
    scopes = fields.List(fields.Nested(Grant), allow_none=True, metadata=SCOPES)
    token = fields.String()
    created_at = UTCDateTime()
