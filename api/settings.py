"""The app's settings: the one :class:`config.Settings` it was built with, read through ``of(app)``."""
from flask import Flask, current_app

from config import Settings

EXTENSION = "settings"


def settings_of(app: Flask | None = None) -> Settings:
    """The settings of ``app`` (by default the current app)."""
    return (app or current_app).extensions[EXTENSION]
