"""Webhooks: subscriptions, secret rotation, deliveries and their attempts."""
import json

from marshmallow import Schema, fields, validate

from api.schemas.fields import JsonBoolean, OptionalReason, Text, UTCDateTime
from registry.events.outbox import EVENT_TYPES


WEBHOOK_URL = {"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "description": "http(s) URL of a public host (unless WEBHOOK_ALLOW_PRIVATE)"}

EVENT_TYPE = fields.String(metadata={"enum": ["*", *EVENT_TYPES]})


class WebhookRequest(Schema):
    url = Text(required=True, metadata=WEBHOOK_URL)
    events = fields.List(EVENT_TYPE, required=True, metadata={"description": 'event types, or ["*"] for all'})
    description = OptionalReason()
    secret = Text(load_default=None, validate=validate.Length(max=100), metadata={
        "description": "the signing secret, whsec_ and the base64 of 24 to 64 random bytes (one kept elsewhere, "
                       "e.g. declared state's secret_env); left out: the registry makes one"})
    reason = OptionalReason("the ledger's webhook_create entry")


class WebhookPatch(Schema):
    url = Text(metadata=WEBHOOK_URL)
    events = fields.List(EVENT_TYPE)
    active = JsonBoolean()
    description = Text(validate=validate.Length(max=2_000))
    reason = OptionalReason("the ledger's webhook_update entry")


class SecretRotation(Schema):
    grace_hours = fields.Float(
        load_default=24.0, validate=validate.Range(min=0, max=720),
        metadata={"description": "how long the old secret keeps signing deliveries beside the new one (0 to 720)"},
    )
    reason = OptionalReason("the ledger's webhook_rotate entry")


class WebhookOut(Schema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    description = fields.String()
    active = fields.Boolean()
    failures_in_a_row = fields.Integer(metadata={"description": "attempts that failed in a row (0 after a success)"})
    paused_until = UTCDateTime(
        allow_none=True,
        metadata={"description": "after 5 failures in a row nothing is sent to the endpoint until then (doubling)"},
    )
    created_by = fields.String()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class WebhookCreatedOut(WebhookOut):
    secret = fields.String(metadata={"description": "whsec_<base64>: verify signatures with it; shown only here"})


class WebhookRotatedOut(WebhookCreatedOut):
    previous_secret_expires_at = UTCDateTime(
        attribute="previous_secret_until",
        metadata={"description": "until then every delivery is signed with the old secret too"},
    )


class DeliveryOut(Schema):
    id = fields.Integer()
    webhook_id = fields.Integer(attribute="subscription_id")
    event_id = fields.Function(lambda d: d.event.uid, metadata={"description": "the webhook-id header"})
    event_type = fields.Function(lambda d: d.event.type)
    status = fields.String(metadata={"description": "pending, delivered or failed"})
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = UTCDateTime(allow_none=True)
    delivered_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()


class AttemptOut(Schema):
    at = UTCDateTime()
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()


class DeliveryDetailOut(DeliveryOut):
    payload = fields.Function(lambda d: json.loads(d.event.body))
    attempt_log = fields.List(fields.Nested(AttemptOut))
