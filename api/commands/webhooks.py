"""``flask webhooks deliver``: deliver webhooks from a process of their own."""
import signal

import click
from flask import current_app
from flask.cli import AppGroup

from api.delivery import EXTENSION

group = AppGroup("webhooks", help="Deliver webhooks.")


@group.command("deliver")
def deliver():
    """Deliver webhooks until SIGTERM or Ctrl-C (with WEBHOOK_DELIVER_IN_WORKERS=0); then let the sends in flight
    finish and record."""
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # before any thread starts: none takes them but the wait below
    deliverer = current_app.extensions[EXTENSION]
    deliverer.start()
    click.echo("delivering webhooks; stop with Ctrl-C")
    signal.sigwait(stops)
    deliverer.stop(wait=True)
