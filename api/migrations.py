"""Flask-Migrate, set up on first use: serving never runs a migration, and Alembic takes long to import.

``app.extensions["migrate"]`` holds a stand-in until something reads it (``flask_migrate.upgrade``,
``migrations/env.py``), and ``flask db …`` is a command group that loads Flask-Migrate's own when
a command of it is asked for. Either way the real ``Migrate(app, db, …)`` then replaces both.
"""
import click
from flask import Flask

from config import BASE_DIR
from registry.db import attach_migrations

DIRECTORY = str(BASE_DIR / "migrations")


def init_migrations(app: Flask) -> None:
    """Make Flask-Migrate's functions work on ``app`` without importing Alembic yet."""
    app.extensions["migrate"] = _Deferred(app)


def db_commands(app: Flask) -> click.Group:
    """``flask db …``, Flask-Migrate's commands, loaded when one of them is asked for."""
    return _DeferredCommands(app, name="db", help="Perform database migrations.")


def _migrate(app: Flask):
    """The real Flask-Migrate configuration of ``app``, set up on the first call."""
    current = app.extensions["migrate"]
    if isinstance(current, _Deferred):
        attach_migrations(app, DIRECTORY)
    return app.extensions["migrate"]


class _Deferred:
    """Stands in ``app.extensions["migrate"]``; the first attribute read sets up Flask-Migrate."""

    def __init__(self, app: Flask):
        self._app = app

    def __getattr__(self, name: str):
        return getattr(_migrate(self._app), name)


class _DeferredCommands(click.Group):
    """``flask db``: Flask-Migrate's group (its options, callback and commands), loaded when it is used."""

    def __init__(self, app: Flask, **kwargs):
        super().__init__(**kwargs)
        self._app = app

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self._load()
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._load().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str):
        return self._load().get_command(ctx, name)

    def _load(self) -> click.Group:
        _migrate(self._app)
        from flask_migrate.cli import db as commands

        self.params, self.callback = commands.params, commands.callback
        return commands
