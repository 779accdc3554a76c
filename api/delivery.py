"""The webhook deliverer's place in the app: one per app, started in each worker, or run alone.

Each gunicorn worker runs one (``post_worker_init``, or the first request under other servers),
so a plain start delivers; ``WEBHOOK_DELIVER_IN_WORKERS=0`` leaves it to ``flask webhooks deliver``.
"""
from dataclasses import fields

from flask import Flask, current_app

from api import lifecycle
from api.settings import settings_of
from registry.changes import EventsRecorded, committed
from registry.events.claims import RetryPolicy
from registry.events.deliverer import Deliverer, DeliverySettings

EXTENSION = "webhook_deliverer"


def init_app(app: Flask) -> None:
    """Build the app's deliverer from its config and start it with the first request if enabled."""
    given = settings_of(app).webhooks
    # The deliverer's settings are the webhooks group's of the same names, its retry schedule the group's retry_*.
    same = {name: getattr(given, name) for name in (setting.name for setting in fields(DeliverySettings))
            if hasattr(given, name)}
    retry = RetryPolicy(given.retry_base_seconds, given.retry_max_seconds, given.retry_window_seconds)
    app.extensions[EXTENSION] = Deliverer(DeliverySettings(**same, retry=retry), app.app_context)
    lifecycle.of(app).add("webhook deliverer", start=lambda: start_in_worker(app), stop=lambda: stop_in_worker(app))
    committed.connect(_wake_on_events)  # once per process: connecting again changes nothing


def start_in_worker(app: Flask) -> None:
    """Start this process's deliverer, unless the deployment delivers from a separate process."""
    if settings_of(app).webhooks.deliver_in_workers:
        app.extensions[EXTENSION].start()


def stop_in_worker(app: Flask) -> None:
    """Let this worker's sends in flight finish and record, so a restart repeats none of them."""
    app.extensions[EXTENSION].stop(wait=True)


def _wake_on_events(_sender, changes: tuple) -> None:
    """The current app's deliverer sends events it just committed at once instead of at its next poll."""
    deliverer = current_app.extensions.get(EXTENSION)
    if deliverer is not None and deliverer.started and any(isinstance(c, EventsRecorded) for c in changes):
        deliverer.wake()
