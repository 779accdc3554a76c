"""``flask models load DIR --name NAME``: register the model file a directory holds and point an alias at it,
from a shell on the server. It is how the image serves as a KServe runtime (deploy/kubernetes/kserve/):
KServe's storage initializer puts the file in /mnt/models, and ``model-registry serve --model-dir`` loads it
before the server starts. Run again on the same file (a restarted pod), it changes nothing."""
import hashlib
import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from api import domain
from api.commands.tokens import clean_errors
from api.domain import EXTENSION
from api.schemas.versions import UploadMetadata
from api.settings import settings_of
from registry.aliases import moves
from registry.catalog import versions

group = AppGroup("models", help="Models from files on the server.")
ACTOR = "models-load"  # the name the history records for what this command moves


@group.command("load")
@click.argument("directory", type=click.Path(exists=True, file_okay=True, dir_okay=True, path_type=Path))
@click.option("--name", required=True, help="the model's name")
@click.option("--alias", default="production", show_default=True, help="the alias that serves the file")
@clean_errors
def load(directory: Path, name: str, alias: str):
    """Register the one model file in DIRECTORY (or DIRECTORY itself, a file) as a version of NAME and point
    ALIAS at it; print the version, the alias and whether anything was new, as JSON."""
    path = model_file(directory)
    with path.open("rb") as artifact:
        digest = hashlib.file_digest(artifact, "sha256").hexdigest(), path.stat().st_size
        artifact.seek(0)
        version, created = versions.upload_version(
            domain.store(), name, artifact=artifact, digest=digest,
            metadata=UploadMetadata().load({"description": f"loaded from {path.name}"}), actor=ACTOR,
            max_rows=settings_of().limits.max_batch_rows, max_model_bytes=settings_of().limits.max_model_bytes,
            max_features=settings_of().limits.max_features,
        )
    move = moves.promote(current_app.extensions[EXTENSION].runtime, name, number=version.number, alias=alias,
                         reason=f"models load {path.name}", force=True, actor=ACTOR, role="admin")
    click.echo(json.dumps({"model": name, "version": version.number, "alias": alias, "sha256": version.sha256,
                           "created": created, "moved": move.event_id is not None}))


def model_file(directory: Path) -> Path:
    """The one model file ``directory`` holds (hidden files and folders aside, as KServe's storage initializer
    leaves them), or ``directory`` itself when it is a file."""
    if directory.is_file():
        return directory
    found = sorted(path for path in directory.iterdir() if path.is_file() and not path.name.startswith("."))
    if len(found) != 1:
        named = ", ".join(path.name for path in found) or "no file"
        raise click.ClickException(f"{directory} must hold exactly one model file, and holds {named}: "
                                   "name the file itself")
    return found[0]
