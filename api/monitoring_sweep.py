"""The monitoring sweep's place in the app: one per app, started in each worker (only the holder of
the fleet's lease sweeps), or run once from ``flask monitoring sweep``."""
from flask import Flask
from marshmallow import ValidationError

from api.schemas import window_span
from registry.monitoring.quality import Thresholds
from registry.monitoring.sweep import Sweeper, SweepSettings

EXTENSION = "monitoring_sweep"


def init_app(app: Flask) -> None:
    """Build the app's sweeper from its config; a MONITOR_WINDOW that is no window stops the start."""
    config = app.config
    try:
        span = window_span(config["MONITOR_WINDOW"])
    except ValidationError as exc:
        raise SystemExit(f"MONITOR_WINDOW={config['MONITOR_WINDOW']!r}: {exc.messages[0]}") from None
    settings = SweepSettings(
        every_seconds=config["MONITOR_SECONDS"], window=config["MONITOR_WINDOW"], span=span,
        thresholds=Thresholds(psi=config["DRIFT_PSI"], p_value=config["DRIFT_P_VALUE"]),
    )
    app.extensions[EXTENSION] = Sweeper(settings, app.app_context)
    app.before_request(lambda: start_in_worker(app))


def sweeper(app: Flask) -> Sweeper:
    """The app's sweeper."""
    return app.extensions[EXTENSION]


def start_in_worker(app: Flask) -> None:
    """Start this process's sweeping thread (it sweeps only while it holds the lease)."""
    sweeper(app).ensure_started()


def stop_in_worker(app: Flask) -> None:
    """Stop sweeping here and let the lease go, so another worker or replica takes over at once."""
    sweeper(app).stop()
