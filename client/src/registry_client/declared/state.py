"""The whole registry in declared state: what ``export`` writes, and the plan of a file (every kind's changes,
in the order apply makes them)."""
from __future__ import annotations

from pathlib import Path

from registry_client.client import RegistryClient
from registry_client.declared import models, tokens, webhooks
from registry_client.declared.changes import Change, PlanRefused, ordered
from registry_client.declared.files import Declared


def export(client: RegistryClient) -> dict:
    """The live registry as a file ``plan`` finds nothing to change in (tokens without their secret files)."""
    return {"models": {model.name: models.state(client, model.name) for model in client.models()},
            "tokens": tokens.state(client), "webhooks": webhooks.state(client)}


def plan(client: RegistryClient, declared: Declared) -> list[Change]:
    """Every change apply would make for ``declared``, in order; PlanRefused, before any change, when the file
    cannot be applied (each problem named)."""
    document, problems, found = declared.document, [], []
    prune = document.get("prune", {})
    base = Path.cwd() if declared.source == "-" else Path(declared.source).parent
    if "tokens" in document or prune.get("tokens"):
        found += tokens.changes(client, document.get("tokens", []), prune.get("tokens", False), base, problems)
    for name, wanted in document.get("models", {}).items():
        found += models.changes(client, name, wanted, prune, problems)
    if "webhooks" in document or prune.get("webhooks"):
        found += webhooks.changes(client, document.get("webhooks", []), prune.get("webhooks", False), base, problems)
    if problems:
        raise PlanRefused(declared.source, problems)
    return ordered(found)
