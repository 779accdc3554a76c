"""The fleet-wide background work of the app: the monitoring sweep, the rollout controller, the
artifact scrub and, when PREDICTION_LOG_EXPORT is set, the prediction log's export.

Each is a leased loop started in every worker; only the process holding its lease in the shared
database works, and another takes over when it dies. ``flask monitoring sweep``, ``flask rollouts
tick`` and ``flask artifacts scrub`` run one turn at once."""
from flask import Flask

from api import domain, lifecycle
from api.input_privacy import hidden_value_names
from api.settings import drift_thresholds, settings_of
from config import MB
from registry.autopilot import controller
from registry.integrity import scrub
from registry.leases import LeasedLoop
from registry.monitoring import log_export
from registry.monitoring.lake import open_lake
from registry.monitoring.sweep import LEASE, SweepSettings, sweep

EXTENSION = "background"


def init_app(app: Flask) -> None:
    """Build the app's loops from its config."""
    given = settings_of(app)
    monitoring = given.monitoring
    settings = SweepSettings(
        every_seconds=monitoring.every_seconds, window=monitoring.window, span=monitoring.span,
        thresholds=drift_thresholds(app),
        name_value=hidden_value_names(app),
        attribution_threshold=monitoring.attribution_drift, attribution_min_rows=monitoring.attribution_min_rows,
    )
    scrubbing = scrub.ScrubSettings(every_seconds=given.storage.scrub_seconds,
                                    bytes_per_second=given.storage.scrub_bytes_per_second)
    report = scrub.DamageReport()
    exporter = _log_exporter(app)
    loops = (
        LeasedLoop(LEASE, settings.every_seconds, lambda: sweep(settings), app.app_context),
        LeasedLoop(controller.LEASE, monitoring.rollout_tick_seconds,
                   lambda: controller.tick(app.extensions[domain.EXTENSION].runtime), app.app_context),
        # A pass takes at most half the period, so the lease (three periods) never runs out meanwhile.
        LeasedLoop(scrub.LEASE, scrubbing.every_seconds,
                   lambda: scrub.scrub(app.extensions[domain.EXTENSION].store, scrubbing,
                                       budget_seconds=scrubbing.every_seconds / 2),
                   app.app_context, every_turn=report.refresh),
    ) + ((LeasedLoop(log_export.LEASE, exporter.settings.every_seconds, exporter.turn, app.app_context,
                     every_turn=exporter.refresh),)
         if exporter is not None else ())
    app.extensions[EXTENSION] = (settings, loops, scrubbing, report, exporter)
    lifecycle.of(app).add("background loops", start=lambda: start_in_worker(app), stop=lambda: stop_in_worker(app))


def sweep_settings(app: Flask) -> SweepSettings:
    """What the app's sweeps measure, over which window."""
    return app.extensions[EXTENSION][0]


def scrub_settings(app: Flask) -> scrub.ScrubSettings:
    """How often the app's artifact scrub runs, and how fast it reads."""
    return app.extensions[EXTENSION][2]


def damage_report(app: Flask) -> scrub.DamageReport:
    """What this process last read of the stored copies the scrub found damaged or missing."""
    return app.extensions[EXTENSION][3]


def log_exporter(app: Flask) -> log_export.LogExporter | None:
    """The app's export of the prediction log (None when PREDICTION_LOG_EXPORT is unset)."""
    return app.extensions[EXTENSION][4]


def _log_exporter(app: Flask) -> log_export.LogExporter | None:
    """The export PREDICTION_LOG_EXPORT asks for; a place it cannot export to stops the start."""
    log = settings_of(app).prediction_log
    where = log.export
    if not where:
        return None
    settings = log_export.ExportSettings(where=where, retention_seconds=log.retention_seconds,
                                         max_mb=log.max_bytes / MB, every_seconds=log.export_seconds)
    try:
        return log_export.LogExporter(settings, lambda: open_lake(where, domain.s3_settings(app)))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def start_in_worker(app: Flask) -> None:
    """Start this process's loops (each works only while it holds its lease)."""
    for loop in app.extensions[EXTENSION][1]:
        loop.start()


def stop_in_worker(app: Flask) -> None:
    """Stop the loops here and let their leases go, so another worker or replica takes over at once."""
    for loop in app.extensions[EXTENSION][1]:
        loop.stop()
