"""Webhook subscriptions in declared state, known by their URL: events, description, whether active. A new
one is signed with the secret in the environment variable its ``secret_env`` names, or else with one the
registry makes, written to its ``secret_file``."""
from __future__ import annotations

import os
from pathlib import Path

from registry_client.client import RegistryClient
from registry_client.declared.changes import Change

MANAGED = ("url", "events", "description", "active")


def state(client: RegistryClient) -> list[dict]:
    """Every subscription as the file declares it."""
    return [{name: getattr(hook, name) for name in MANAGED} for hook in client.webhooks()]


def changes(client: RegistryClient, wanted: list[dict], prune: bool, base: Path, problems: list[str]) -> list[Change]:
    """What apply would change for the file's ``webhooks``; what cannot be goes to ``problems``."""
    live = {}
    for hook in client.webhooks():
        live.setdefault(hook.url, hook)  # a URL subscribed twice by hand: the second is not the file's
    found, named = [], set()
    for hook in wanted:
        url, where = hook["url"], f"webhooks/{hook['url']}"
        if url in named:
            problems.append(f"{where}: named twice")
            continue
        named.add(url)
        want = {"url": url, "events": hook["events"], "description": hook.get("description", ""),
                "active": hook.get("active", True)}
        have = {name: getattr(live[url], name) for name in MANAGED} if url in live else None
        if have == want:
            continue
        if have is not None:
            found.append(Change("webhook", "update", where, have, want, target=live[url].id))
            continue
        if "secret_env" in hook:
            given = os.environ.get(hook["secret_env"])
            if not given:
                problems.append(f"{where}: ${hook['secret_env']} (its secret_env) is not set")
            found.append(Change("webhook", "create", where, None, want, target=given,
                                note=f"signed with ${hook['secret_env']}"))
            continue
        secret = base / hook["secret_file"] if "secret_file" in hook else None
        if secret is not None and not os.access(secret.parent, os.W_OK):
            problems.append(f"{where}: cannot write the secret to {hook['secret_file']}; make its directory writable")
        found.append(Change("webhook", "create", where, None, want, target=secret,
                            note=f"its signing secret is written to {hook['secret_file']}" if secret else ""))
    if prune:
        found += [Change("webhook", "delete", f"webhooks/{hook.url}", {name: getattr(hook, name) for name in MANAGED},
                         None, target=hook.id) for hook in client.webhooks() if hook.url not in named]
    return found


def apply_change(client: RegistryClient, change: Change, reason: str) -> tuple[str, str]:
    """Make, change or remove one subscription, ``reason`` kept in the ledger; a new signing secret goes only to
    its file."""
    if change.action == "delete":
        client.delete_webhook(change.target, reason=reason)
    elif change.action == "update":
        client.update_webhook(change.target, **{name: change.after[name] for name in MANAGED}, reason=reason)
    elif change.target is None or isinstance(change.target, str):  # none, or the secret from secret_env
        _make(client, change.after, reason, change.target)
    else:
        descriptor = os.open(change.target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as secret_file:
            secret_file.write(_make(client, change.after, reason).secret + "\n")
    return "done", ""


def _make(client: RegistryClient, hook: dict, reason: str, secret: str | None = None):
    made = client.create_webhook(hook["url"], hook["events"], hook["description"], secret=secret, reason=reason)
    if not hook["active"]:
        client.update_webhook(made.id, active=False, reason=reason)
    return made
