"""The ``model-registry`` command, installed with the package.

``model-registry serve`` starts the service as the container does (``deploy/entrypoint.py``): migrate the
database, keep an admin token in INSTANCE_DIR, then run gunicorn with the package's settings. Every
``flask --app wsgi`` command is there too: ``model-registry db upgrade``, ``model-registry tokens create``,
``model-registry artifacts gc``, and the rest of ``model-registry --help``.
"""
import click
from flask.cli import FlaskGroup


def _app():
    from wsgi import app  # only for the app's commands: ``serve`` reads the configuration after its secret files

    return app


@click.group(cls=FlaskGroup, create_app=_app)
def cli() -> None:
    """The model registry: serve it, or run one of its commands."""


@cli.command(with_appcontext=False, context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def serve(command: tuple[str, ...]) -> None:
    """Migrate the database, keep an admin token, then serve with gunicorn (or run COMMAND so prepared)."""
    from deploy import entrypoint

    entrypoint.main(list(command), read_again="cat")
