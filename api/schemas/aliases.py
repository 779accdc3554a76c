"""Aliases and their history: promote, roll back, the alias map at a time, and the moves as answered."""
from datetime import timezone

from marshmallow import Schema, fields, validate

from api.schemas.fields import JsonBoolean, OptionalReason, Text, UTCDateTime
from api.schemas.paging import PageArgs
from registry.names import ALIAS_NAME, DEFAULT_ALIAS, MAX_ID


ALIAS = {"pattern": ALIAS_NAME.pattern, "description": "1-64 lowercase letters, digits, '_' or '-', starting with a letter"}


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


class ReasonArgs(Schema):
    """``?reason=`` of a DELETE (alias delete, archive), kept in the history or the webhook event."""

    reason = OptionalReason()


class PromoteRequest(Schema):
    alias = fields.String(load_default=DEFAULT_ALIAS, metadata=ALIAS)
    reason = OptionalReason()
    force = JsonBoolean(load_default=False)


class RollbackRequest(Schema):
    alias = fields.String(load_default=DEFAULT_ALIAS, metadata=ALIAS)
    to_version = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_ID))
    reason = OptionalReason()


class MoveOut(Schema):
    model = fields.String()
    alias = fields.String()
    version = fields.Integer()
    previous_version = fields.Integer(allow_none=True)
    event_id = fields.Integer(allow_none=True)


class EventOut(Schema):
    id = fields.Integer()
    alias = fields.String(allow_none=True, metadata={"description": "null for an entry of no alias: a change of the "
                                                                    "model's or a version's words"})
    from_version = fields.Integer(allow_none=True)
    to_version = fields.Integer(allow_none=True)
    action = fields.String()
    actor = fields.String()
    reason = fields.String()
    forced = fields.Boolean()
    reverts = fields.Integer(
        attribute="reverts_event_id", allow_none=True,
        metadata={"description": "a rollback's: the id of the oldest promote it undid (it and every later one "
                                 "of the alias are undone); null for other actions"},
    )
    at = UTCDateTime()
    details = fields.Dict(allow_none=True, metadata={"description": "a rollout event's versions, percents and figures; "
                                                                    "a governance event's policy or request; an "
                                                                    "approved promote's request and approvers"})
