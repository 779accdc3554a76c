"""``flask monitoring sweep``: measure every served version now (what the background sweep does)."""
import json

import click
from flask import current_app
from flask.cli import AppGroup

from api.background import sweep_settings
from registry.monitoring.sweep import sweep as sweep_now

group = AppGroup("monitoring", help="Live quality and drift of the served versions.")


@group.command("sweep")
def sweep():
    """Measure every served version over MONITOR_WINDOW, keep the figures for /metrics and send
    model.drift for new drift; prints what it did as JSON."""
    result = sweep_now(sweep_settings(current_app))
    click.echo(json.dumps({"versions": result.versions, "alerts": result.alerts}, default=str))
