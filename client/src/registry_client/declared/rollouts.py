"""Rollout plans in declared state: the candidate version (by number and sha256) a file asks to roll out onto
an alias through a plan the registry walks by itself (docs/rollouts.md). A plan is started once: while a
rollout of that version runs, or once the alias serves it, there is nothing to change. On an alias whose policy
asks approvals of it, the start is an approval request for the rollout, which its last approval starts: apply
opens it once and reports the change as waiting while it is open."""
from __future__ import annotations

from registry_client.client import RegistryClient
from registry_client.declared import versions
from registry_client.declared.changes import Change, waits
from registry_client.errors import RegistryError


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
        waiting = next((request for request in client.approval_requests(model, alias, state="open")
                        if request.version == want["version"] and request.rollout is not None), None)
        found.append(Change("rollout", "create" if running is None else "update", where, before, _shown(want),
                            model, alias, target=want, waiting=waiting))
    return found


def apply_rollout(client: RegistryClient, change: Change, reason: str) -> tuple[str, str]:
    """Start the declared rollout (``PUT …/rollout`` with its plan), replacing any rollout on the alias; where the
    alias's policy lacks only approvals, open the request for the rollout that gathers them (once)."""
    if change.waiting is not None:
        return "waiting", waits(change.waiting)
    want = change.target
    try:
        client.start_rollout(change.model, change.name, canary={"version": want["version"]}, plan=want["plan"],
                             sticky_header=want.get("sticky_header"), reason=reason)
    except RegistryError as exc:
        missing = exc.problem.get("missing") if exc.status == 409 else None
        if not missing or {rule.get("rule") for rule in missing} != {"approvals"}:
            raise
        asked = {"plan": want["plan"], **({"sticky_header": want["sticky_header"]} if want.get("sticky_header") else {})}
        return "waiting", waits(client.request_approval(change.model, change.name, want["version"], reason=reason,
                                                        rollout=asked))
    return "done", "the registry walks its plan from here"


def _shown(want: dict) -> dict:
    return {key: want[key] for key in ("version", "plan", "sticky_header") if key in want}
