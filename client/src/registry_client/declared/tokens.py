"""API tokens in declared state: name, role, owner and scopes, never the secret. A token the registry lacks is
made and its secret written to the file the declaration names (mode 0600), never printed; one whose role,
owner or scopes differ is revoked and made again (there is no other way to change them), with a new secret."""
from __future__ import annotations

import os
from pathlib import Path

from registry_client.client import RegistryClient
from registry_client.declared.changes import Change


def state(client: RegistryClient) -> list[dict]:
    """Every token as the file declares it (no secret file: the registry cannot know where one is kept)."""
    return [{"name": token.name, "role": token.role, "owner": token.owner,
             **({"scopes": token.scopes} if token.scopes is not None else {})} for token in client.tokens()]


def changes(client: RegistryClient, wanted: list[dict], prune: bool, base: Path, problems: list[str]) -> list[Change]:
    """What apply would change for the file's ``tokens``; what cannot be goes to ``problems`` (a token to make
    without a writable secret file, a name given twice, the registry's last admin token removed)."""
    live = {token["name"]: token for token in state(client)}
    found, named = [], set()
    for token in wanted:
        name, where = token["name"], f"tokens/{token['name']}"
        if name in named:
            problems.append(f"{where}: named twice")
            continue
        named.add(name)
        want = {"name": name, "role": token["role"], "owner": token.get("owner", name),
                **({"scopes": token["scopes"]} if token.get("scopes") is not None else {})}
        have = live.get(name)
        if have == want:
            continue
        secret = _secret_file(token, base, where, problems)
        if secret is None:
            continue
        note = f"its secret is written to {token['secret_file']}" if have is None else (
            f"revoked and made again: a new secret is written to {token['secret_file']}")
        found.append(Change("token", "create" if have is None else "update", where, have, want, name=name,
                            target=secret, note=note))
    removed = [name for name in live if name not in named] if prune else []
    found += [Change("token", "delete", f"tokens/{name}", live[name], None, name=name) for name in removed]
    admins_before = sum(token["role"] == "admin" for token in live.values())
    admins_after = sum(change.after["role"] == "admin" for change in found if change.after is not None) + sum(
        token["role"] == "admin" for name, token in live.items()
        if name not in removed and not any(change.name == name for change in found))
    if admins_before and not admins_after:
        problems.append("tokens: the file would remove the registry's last admin token; keep one (or name one) "
                        "with role admin")
    return found


def apply_change(client: RegistryClient, change: Change, reason: str) -> tuple[str, str]:
    """Make, remake or revoke one token, ``reason`` kept in the ledger; a new secret goes only to its file."""
    if change.action in ("update", "delete"):
        client.revoke_token(change.name, reason=reason)
    if change.action in ("create", "update"):
        descriptor = os.open(change.target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as secret_file:
            made = client.create_token(change.name, change.after["role"], owner=change.after["owner"],
                                       scopes=change.after.get("scopes"), reason=reason)
            secret_file.write(made.token + "\n")
    return "done", ""


def _secret_file(token: dict, base: Path, where: str, problems: list[str]) -> Path | None:
    """Where a token's new secret goes (relative to the declared file), if it can be written there."""
    if "secret_file" not in token:
        problems.append(f"{where}: name a secret_file for the registry to make the token (its secret is written "
                        "there, never printed)")
        return None
    path = base / token["secret_file"]
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        problems.append(f"{where}: cannot write the secret to {token['secret_file']}; make its directory writable")
        return None
    return path
