"""The ``flask`` command groups: tokens, artifacts, webhooks, monitoring, and Flask-Migrate's ``db``."""
from flask import Flask

from api.commands import artifacts, monitoring, tokens, webhooks
from api.migrations import db_commands


def register(app: Flask) -> None:
    """Add every command group to ``flask``."""
    for group in (tokens.group, artifacts.group, webhooks.group, monitoring.group):
        app.cli.add_command(group)
    app.cli.add_command(db_commands(app))
