"""The versions a declared file names, each by number and by its artifact's sha256 (both must agree), and their
model cards (description, intended use, limitations: the words a policy's ``require.card`` asks for)."""
from __future__ import annotations

from registry_client.client import RegistryClient
from registry_client.declared.changes import Change
from registry_client.records import Version

CARD_FIELDS = ("description", "intended_use", "limitations")


def pinned(client: RegistryClient, model: str, want: dict, where: str, problems: list[str]) -> Version | None:
    """The version ``want`` names by ``version`` and ``sha256``, or None with the reason in ``problems`` (the
    model has no such version, its sha256 is another, or it is archived)."""
    version = client.find_version(model, want["version"])
    if version is None:
        problems.append(f"{where}: {model} has no version {want['version']}")
    elif version.sha256 != want["sha256"]:
        problems.append(f"{where}: version {version.version} of {model} is sha256 {version.sha256}, "
                        f"not {want['sha256']}: the file would point at bytes it did not mean")
    elif version.status == "archived":
        problems.append(f"{where}: version {version.version} of {model} is archived and serves nobody")
    else:
        return version
    return None


def cards(client: RegistryClient, model: str) -> list[dict]:
    """The cards of ``model``'s versions that have one (any field filled), oldest version first, as a file
    declares them."""
    return [{"version": version.version, "sha256": version.sha256,
             **{field: getattr(version, field) for field in CARD_FIELDS}}
            for version in sorted(client.versions(model), key=lambda version: version.version)
            if any(getattr(version, field) for field in CARD_FIELDS)]


def card_changes(client: RegistryClient, model: str, wanted: list[dict], problems: list[str]) -> list[Change]:
    """One update per card field the file gives that differs from the version's (a field left out is left alone)."""
    found, seen = [], set()
    for want in wanted:
        where = f"models/{model}/cards/{want['version']}"
        if want["version"] in seen:
            problems.append(f"{where}: the file gives version {want['version']}'s card twice")
            continue
        seen.add(want["version"])
        version = pinned(client, model, want, where, problems)
        if version is None:
            continue
        found += [Change("card", "update", f"{where}/{field}", getattr(version, field), want[field], model, field,
                         target=version.version)
                  for field in CARD_FIELDS if field in want and want[field] != getattr(version, field)]
    return found


def apply_card(client: RegistryClient, change: Change, reason: str) -> tuple[str, str]:
    """Write one card field of a version (``PATCH …/versions/<v>``), ``reason`` kept in the ledger."""
    client.update_version(change.model, change.target, **{change.name: change.after}, reason=reason)
    return "done", ""
