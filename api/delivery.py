"""The webhook deliverer's place in the app: one per app, started in each worker, or run alone.

Each gunicorn worker runs one (``post_worker_init``, or the first request under other servers),
so a plain start delivers; ``WEBHOOK_DELIVER_IN_WORKERS=0`` leaves it to ``flask webhooks deliver``.
"""
import signal
import threading

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from registry.events.claims import RetryPolicy
from registry.events.deliverer import Deliverer, DeliverySettings

EXTENSION = "webhook_deliverer"

webhooks_group = AppGroup("webhooks", help="Deliver webhooks.")


def init_app(app: Flask) -> None:
    """Build the app's deliverer from its config and start it with the first request if enabled."""
    config = app.config
    settings = DeliverySettings(
        threads=config["WEBHOOK_THREADS"],
        timeout_seconds=config["WEBHOOK_TIMEOUT_SECONDS"],
        poll_seconds=config["WEBHOOK_POLL_SECONDS"],
        lease_seconds=config["WEBHOOK_LEASE_SECONDS"],
        allow_private=config["WEBHOOK_ALLOW_PRIVATE"],
        retry=RetryPolicy(
            config["WEBHOOK_RETRY_BASE_SECONDS"], config["WEBHOOK_RETRY_MAX_SECONDS"], config["WEBHOOK_RETRY_WINDOW_SECONDS"]
        ),
    )
    app.extensions[EXTENSION] = Deliverer(settings, app.app_context)
    app.before_request(lambda: start_in_worker(app))
    app.cli.add_command(webhooks_group)


def start_in_worker(app: Flask) -> None:
    """Start this process's deliverer, unless the deployment delivers from a separate process."""
    if app.config["WEBHOOK_DELIVER_IN_WORKERS"]:
        app.extensions[EXTENSION].ensure_started()


def stop_in_worker(app: Flask) -> None:
    """Let this worker's sends in flight finish and record, so a restart repeats none of them."""
    app.extensions[EXTENSION].stop(wait=True)


@webhooks_group.command("deliver")
def deliver():
    """Deliver webhooks in the foreground until SIGTERM or Ctrl-C (with WEBHOOK_DELIVER_IN_WORKERS=0)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo("delivering webhooks; stop with Ctrl-C")
    current_app.extensions[EXTENSION].run_until(stop)
