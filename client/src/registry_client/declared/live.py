"""The live registry in the file's shape, read over HTTP: what ``export`` writes and what ``plan`` compares with."""
from __future__ import annotations

from registry_client.client import RegistryClient


def model_state(client: RegistryClient, name: str) -> dict | None:
    """One model as the file declares it (description, tags, aliases with their versions' sha256), or None
    when the registry has no such model."""
    found = client.find_model(name)
    if found is None:
        return None
    aliases = {}
    for alias, number in sorted(found.aliases.items()):
        aliases[alias] = {"version": number, "sha256": client.version(name, number).sha256}
    return {"description": found.description, "tags": dict(found.tags), "aliases": aliases}


def registry_state(client: RegistryClient) -> dict:
    """Every model of the registry, by name, as :func:`model_state` reads it: a file ``plan`` finds nothing
    to change in."""
    return {"models": {model.name: model_state(client, model.name) for model in client.models()}}
