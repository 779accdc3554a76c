"""Webhook subscriptions and their delivery log (admin only)."""
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import principal, requires
from api.content import accepts
from api.schemas.aliases import ReasonArgs
from api.schemas.paging import PageArgs, page_of
from api.schemas.webhooks import DeliveryDetailOut, DeliveryOut, SecretRotation, WebhookCreatedOut, WebhookOut, WebhookPatch, WebhookRequest, WebhookRotatedOut
from api.settings import settings_of
from registry.events import subscriptions

blp = Blueprint("webhooks", __name__, description="Webhooks: signed event notifications")


def _allow_private() -> bool:
    return settings_of().webhooks.allow_private


@blp.route("/webhooks")
class Webhooks(MethodView):
    @requires("admin")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(WebhookOut))
    def get(self, args):
        """Subscriptions, oldest first; never their secrets."""
        return subscriptions.subscription_page(args["page"], args["per_page"])

    @requires("admin")
    @accepts("application/json")
    @blp.arguments(WebhookRequest)
    @blp.response(201, WebhookCreatedOut)
    @blp.alt_response(422, description="Unknown event type, or a URL that is not a public http(s) address")
    def post(self, body):
        """Subscribe a URL to events; the response is the only time the signing secret is shown."""
        created = subscriptions.create_subscription(**body, actor=principal().name, allow_private=_allow_private())
        return created, 201, {"Location": url_for("webhooks.Webhook", webhook_id=created.id)}


@blp.route("/webhooks/<int:webhook_id>")
class Webhook(MethodView):
    @requires("admin")
    @blp.response(200, WebhookOut)
    def get(self, webhook_id):
        """One subscription (never its secret)."""
        return subscriptions.get_subscription(webhook_id)

    @requires("admin")
    @accepts("application/json")
    @blp.arguments(WebhookPatch)
    @blp.response(200, WebhookOut)
    def patch(self, body, webhook_id):
        """Change the url, events, active flag or description."""
        return subscriptions.update_subscription(webhook_id, body, _allow_private(), actor=principal().name,
                                                 reason=body.pop("reason"))

    @requires("admin")
    @blp.arguments(ReasonArgs, location="query")
    @blp.response(204)
    def delete(self, args, webhook_id):
        """Remove a subscription and its delivery log (``?reason=`` kept in the ledger)."""
        subscriptions.delete_subscription(webhook_id, actor=principal().name, reason=args["reason"])


@blp.route("/webhooks/<int:webhook_id>/deliveries")
@requires("admin")
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(DeliveryOut))
def deliveries(args, webhook_id):
    """The delivery log, newest first: event, attempts, last answer, next attempt, delivered_at."""
    return subscriptions.delivery_page(webhook_id, args["page"], args["per_page"])


@blp.route("/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>")
@requires("admin")
@blp.response(200, DeliveryDetailOut)
def delivery(webhook_id, delivery_id):
    """One delivery with its payload and every attempt."""
    return subscriptions.get_delivery(webhook_id, delivery_id)


@blp.route("/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver", methods=["POST"])
@requires("admin")
@blp.response(202, DeliveryOut)
@blp.alt_response(409, description="The subscription is inactive")
def redeliver(webhook_id, delivery_id):
    """Send the delivery's event again (same webhook-id) as a new delivery, due now."""
    return subscriptions.redeliver(webhook_id, delivery_id)


@blp.route("/webhooks/<int:webhook_id>/ping", methods=["POST"])
@requires("admin")
@blp.response(202, DeliveryOut)
@blp.alt_response(409, description="The subscription is inactive")
def ping(webhook_id):
    """Queue a ``ping`` event for this subscription; the deliverer sends it within a poll."""
    return subscriptions.ping(webhook_id)


@blp.route("/webhooks/<int:webhook_id>/rotate-secret", methods=["POST"])
@requires("admin")
@accepts("application/json", body_optional=True)
@blp.arguments(SecretRotation)
@blp.response(200, WebhookRotatedOut)
def rotate_secret(body, webhook_id):
    """Give the subscription a new signing secret, shown only in this answer. Until
    ``previous_secret_expires_at`` every delivery carries a signature with each secret, so the receiver
    can switch to the new one without missing an event."""
    return subscriptions.rotate_secret(webhook_id, grace_hours=body["grace_hours"], actor=principal().name,
                                       reason=body["reason"])
