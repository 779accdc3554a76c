"""The per-app domain objects (artifact store, model server) that views hand to use cases."""
from dataclasses import dataclass

from flask import current_app

from registry.artifacts.store import ArtifactStore
from registry.serving.server import ModelServer

EXTENSION = "model_registry"


@dataclass(frozen=True)
class Services:
    """What one app instance serves with."""

    store: ArtifactStore
    server: ModelServer


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions[EXTENSION]
