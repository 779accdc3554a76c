"""The app's settings: the one :class:`config.Settings` it was built with, read through ``of(app)``."""
from flask import Flask, current_app

from config import Settings
from registry.monitoring.quality import Thresholds

EXTENSION = "settings"


def settings_of(app: Flask | None = None) -> Settings:
    """The settings of ``app`` (by default the current app)."""
    return (app or current_app).extensions[EXTENSION]


def drift_thresholds(app: Flask | None = None) -> Thresholds:
    """When a column has drifted, by the settings of ``app`` (DRIFT_PSI, DRIFT_P_VALUE, DRIFT_MIN_REFERENCE_ROWS)."""
    given = settings_of(app).monitoring
    return Thresholds(psi=given.drift_psi, p_value=given.drift_p_value, min_reference_rows=given.drift_min_reference_rows)
