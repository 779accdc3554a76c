"""``flask monitoring sweep``: measure every served version now (what the background sweep does);
``flask monitoring export-log``: export the prediction log's rows due now (what the export loop does)."""
import json
from dataclasses import asdict

import click
from flask import current_app
from flask.cli import AppGroup

from api.background import log_exporter, sweep_settings
from registry.leases import holder_id, hold, release
from registry.monitoring.log_export import LEASE as EXPORT_LEASE
from registry.monitoring.sweep import sweep as sweep_now

group = AppGroup("monitoring", help="Live quality and drift of the served versions.")


@group.command("sweep")
def sweep():
    """Measure every served version over MONITOR_WINDOW, keep the figures for /metrics and send
    model.drift for new drift and model.attribution_drift for a canary's new attribution drift; prints
    what it did as JSON."""
    result = sweep_now(sweep_settings(current_app))
    click.echo(json.dumps({"versions": result.versions, "alerts": result.alerts,
                           "attribution_alerts": result.attribution_alerts}, default=str))


@group.command("export-log")
def export_log():
    """Export the prediction log's rows due now to PREDICTION_LOG_EXPORT (and prune what went past the
    byte bound), holding the export's lease for the while; prints what went as JSON. Exit 1 when an
    export failed or another process holds the lease, 2 when PREDICTION_LOG_EXPORT is unset."""
    exporter = log_exporter(current_app)
    if exporter is None:
        raise click.UsageError("PREDICTION_LOG_EXPORT is not set: there is nowhere to export to")
    holder = holder_id()
    if not hold(EXPORT_LEASE, holder, seconds=max(60.0, exporter.settings.every_seconds * 3)):
        raise click.ClickException("another process holds the prediction-log-export lease and exports every "
                                   f"{exporter.settings.every_seconds:g} s; nothing was done")
    try:
        done = exporter.turn()
    finally:
        release(EXPORT_LEASE, holder)
    failing = [{"model": name, "failures": failures, "since": since, "error": error}
               for name, failures, since, error in exporter.failing]
    click.echo(json.dumps({"exported": [asdict(step) for step in done], "failing": failing}, default=str))
    if failing:
        raise SystemExit(1)
