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
@click.option("--model-dir", help="first serve the one model file of this directory (KServe's /mnt/models) ...")
@click.option("--model-name", help="... as this model's production")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def serve(model_dir: str | None, model_name: str | None, command: tuple[str, ...]) -> None:
    """Migrate the database, keep an admin token, then serve with gunicorn (or run COMMAND so prepared)."""
    from deploy import entrypoint

    if (model_dir is None) != (model_name is None):
        raise click.UsageError("--model-dir and --model-name go together")
    entrypoint.main(list(command), read_again="cat", load=(model_dir, model_name) if model_dir else None)
