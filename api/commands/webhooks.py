"""``flask webhooks deliver``: deliver webhooks from a process of their own."""
import signal
import threading

import click
from flask import current_app
from flask.cli import AppGroup

from api.delivery import EXTENSION

group = AppGroup("webhooks", help="Deliver webhooks.")


@group.command("deliver")
def deliver():
    """Deliver webhooks in the foreground until SIGTERM or Ctrl-C (with WEBHOOK_DELIVER_IN_WORKERS=0)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo("delivering webhooks; stop with Ctrl-C")
    current_app.extensions[EXTENSION].run_until(stop)
