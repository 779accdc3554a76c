"""The fleet-wide background work of the app: the monitoring sweep and the rollout controller.

Each is a leased loop started in every worker; only the process holding its lease in the shared
database works, and another takes over when it dies. ``flask monitoring sweep`` and ``flask
rollouts tick`` run one turn at once."""
from flask import Flask
from marshmallow import ValidationError

from api import domain, worker_starts
from api.schemas import window_span
from registry.autopilot import controller
from registry.leases import LeasedLoop
from registry.monitoring.quality import Thresholds
from registry.monitoring.sweep import LEASE, SweepSettings, sweep

EXTENSION = "background"


def init_app(app: Flask) -> None:
    """Build the app's loops from its config; a MONITOR_WINDOW that is no window stops the start."""
    config = app.config
    try:
        span = window_span(config["MONITOR_WINDOW"])
    except ValidationError as exc:
        raise SystemExit(f"MONITOR_WINDOW={config['MONITOR_WINDOW']!r}: {exc.messages[0]}") from None
    settings = SweepSettings(
        every_seconds=config["MONITOR_SECONDS"], window=config["MONITOR_WINDOW"], span=span,
        thresholds=Thresholds(psi=config["DRIFT_PSI"], p_value=config["DRIFT_P_VALUE"],
                              min_reference_rows=config["DRIFT_MIN_REFERENCE_ROWS"]),
    )
    loops = (
        LeasedLoop(LEASE, settings.every_seconds, lambda: sweep(settings), app.app_context),
        LeasedLoop(controller.LEASE, config["ROLLOUT_TICK_SECONDS"],
                   lambda: controller.tick(app.extensions[domain.EXTENSION].runtime), app.app_context),
    )
    app.extensions[EXTENSION] = (settings, loops)
    worker_starts.add(app, lambda: start_in_worker(app))


def sweep_settings(app: Flask) -> SweepSettings:
    """What the app's sweeps measure, over which window."""
    return app.extensions[EXTENSION][0]


def start_in_worker(app: Flask) -> None:
    """Start this process's loops (each works only while it holds its lease)."""
    for loop in app.extensions[EXTENSION][1]:
        loop.ensure_started()


def stop_in_worker(app: Flask) -> None:
    """Stop the loops here and let their leases go, so another worker or replica takes over at once."""
    for loop in app.extensions[EXTENSION][1]:
        loop.stop()
