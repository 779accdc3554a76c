"""Rollout plans in declared state: the candidate version (by number and sha256) a file asks to roll out onto
an alias through a plan the registry walks by itself (docs/rollouts.md). A plan is started once: while a
rollout of that version runs, or once the alias serves it, there is nothing to change."""
from __future__ import annotations

from registry_client.client import RegistryClient
from registry_client.declared import versions
from registry_client.declared.changes import Change


def state(client: RegistryClient, model: str, aliases: dict) -> dict:
    """The planned rollouts running on ``model``'s ``aliases`` (alias -> version), as a file declares them."""
    found = {}
    for alias in sorted(aliases):
        rollout = client.rollout(model, alias)
        if rollout is None or rollout.plan is None or rollout.canary is None:
            continue
        number = rollout.canary["version"]
        declared = {"version": number, "sha256": client.version(model, number).sha256,
                    "plan": {"steps": rollout.plan["steps"], "on_success": rollout.plan["on_success"]}}
        found[alias] = {**declared, **({"sticky_header": rollout.sticky_header} if rollout.sticky_header else {})}
    return found


def changes(client: RegistryClient, model: str, wanted: dict, served: dict, problems: list[str]) -> list[Change]:
    """A start for each declared rollout whose version neither runs as the alias's canary nor serves it
    (``served``: alias -> the version it serves, after the file's moves)."""
    found = []
    for alias, want in wanted.items():
        where = f"models/{model}/rollouts/{alias}"
        if versions.pinned(client, model, want, where, problems) is None:
            continue
        if served.get(alias) == want["version"]:
            continue  # rolled out already (or moved there): done
        running = client.rollout(model, alias)
        canary = running.canary["version"] if running is not None and running.canary else None
        if canary == want["version"]:
            continue
        before = None if running is None else {"canary": canary, "shadow": (running.shadow or {}).get("version")}
        found.append(Change("rollout", "create" if running is None else "update", where, before, _shown(want),
                            model, alias, target=want))
    return found


def apply_rollout(client: RegistryClient, change: Change, reason: str) -> tuple[str, str]:
    """Start the declared rollout (``PUT …/rollout`` with its plan), replacing any rollout on the alias."""
    want = change.target
    client.start_rollout(change.model, change.name, canary={"version": want["version"]}, plan=want["plan"],
                         sticky_header=want.get("sticky_header"), reason=reason)
    return "done", "the registry walks its plan from here"


def _shown(want: dict) -> dict:
    return {key: want[key] for key in ("version", "plan", "sticky_header") if key in want}
