"""The ``flask`` command groups: tokens, artifacts, webhooks, monitoring, rollouts, audit, policy, models, and
Flask-Migrate's ``db``."""
from flask import Flask

from api.commands import artifacts, audit, models, monitoring, policies, rollouts, tokens, webhooks
from api.migrations import db_commands


def register(app: Flask) -> None:
    """Add every command group to ``flask``."""
    for group in (tokens.group, artifacts.group, webhooks.group, monitoring.group, rollouts.group, audit.group,
                  policies.group, models.group):
        app.cli.add_command(group)
    app.cli.add_command(db_commands(app))
