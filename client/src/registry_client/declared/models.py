"""Models in declared state: their own fields, the prediction log they keep (its retention), the policies that
guard their aliases, and the version each alias serves (by number and sha256)."""
from __future__ import annotations

from datetime import datetime, timezone

from registry_client.client import RegistryClient
from registry_client.declared import rollouts, versions
from registry_client.declared.changes import Change, waits
from registry_client.errors import RegistryError

FIELDS = ("description", "tags", "prediction_log")
LOG_KEYS = ("sample", "max_mb", "explain")  # a prediction log's members, in the schema's order
DEFAULT_MOVERS = ["admin", "ci"]  # the registry's, for a policy that names no movers
DEFAULT_REQUEST_HOURS = 72


def state(client: RegistryClient, name: str) -> dict | None:
    """One model as the file declares it, or None when the registry has none: its description, tags,
    prediction log, aliases (version and sha256), the policies of its aliases, the planned rollouts running on
    them and its versions' cards."""
    found = client.find_model(name)
    if found is None:
        return None
    aliases = {alias: {"version": number, "sha256": client.version(name, number).sha256}
               for alias, number in sorted(found.aliases.items())}
    policies = {policy.alias: policy.policy for policy in client.policies(name)}
    log = found.raw.get("prediction_log") or {}
    model = {"description": found.description, "tags": dict(found.tags),
             "prediction_log": {key: log[key] for key in LOG_KEYS if key in log}, "aliases": aliases}
    running, cards = rollouts.state(client, name, aliases), versions.cards(client, name)
    return {**model, **({"policies": policies} if policies else {}), **({"rollouts": running} if running else {}),
            **({"cards": cards} if cards else {})}


def changes(client: RegistryClient, name: str, wanted: dict, prune: dict, problems: list[str]) -> list[Change]:
    """What apply would change on model ``name`` for the file's ``wanted``; what cannot be goes to ``problems``."""
    live = state(client, name)
    if live is None:
        problems.append(f"models/{name}: the registry has no model {name!r}; upload its first version "
                        "(the file names versions, it does not make them)")
        return []
    found = []
    for field in FIELDS:
        have = live[field]
        want = {**have, **wanted[field]} if field == "prediction_log" and field in wanted else wanted.get(field)
        if field in wanted and want != have:  # a prediction log sends only what the file names
            found.append(Change("model", "update", f"models/{name}/{field}", have, want, name, field, wanted[field]))
    found += versions.card_changes(client, name, wanted.get("cards", []), problems)
    found += _policy_changes(name, wanted.get("policies", {}), live.get("policies", {}), prune)
    planned = wanted.get("rollouts", {})
    found += _alias_changes(client, name, wanted.get("aliases", {}), live["aliases"], prune, problems, planned)
    served = {alias: have["version"] for alias, have in live["aliases"].items()}
    served |= {alias: want["version"] for alias, want in wanted.get("aliases", {}).items()
               if not _rolled_out(live["aliases"].get(alias), planned.get(alias))}
    found += rollouts.changes(client, name, planned, served, problems)
    return found


def apply_change(client: RegistryClient, change: Change, reason: str) -> tuple[str, str]:
    """Make one change of a model; ``("done" | "waiting", detail)``, or RegistryError when refused."""
    if change.kind == "model":
        client.update_model(change.model, **{change.name: change.target}, reason=reason)
    elif change.kind == "policy" and change.action == "delete":
        client.delete_policy(change.model, change.name, reason=reason)
    elif change.kind == "policy":
        client.set_policy(change.model, change.name, change.after, reason=reason)
    elif change.action == "delete":
        client.delete_alias(change.model, change.name, reason=reason)
    elif change.waiting is not None:
        return "waiting", waits(change.waiting)
    else:
        return _move(client, change, reason)
    return "done", ""


def normal_policy(policy: dict) -> dict:
    """A declared policy as the registry shows it once set: every default filled in, times in UTC."""
    movers, require = policy.get("movers", {}), policy.get("require", {})
    normal_movers = {"roles": list(movers.get("roles", DEFAULT_MOVERS)), "tokens": list(movers.get("tokens", []))}
    if movers.get("groups"):
        normal_movers["groups"] = list(movers["groups"])
    normal_require = {}
    if "evaluation" in require:
        rule = require["evaluation"]
        normal_require["evaluation"] = {"dataset": rule["dataset"], "metric": rule["metric"],
                                        "margin": rule.get("margin", 0.0), "higher_is_better": rule.get("higher_is_better")}
    if require.get("card"):
        normal_require["card"] = list(require["card"])
    for rule in ("compatible_signature", "rollout"):
        if require.get(rule):
            normal_require[rule] = True
    return {
        "movers": normal_movers,
        "approvals": policy.get("approvals", 0),
        "require": normal_require,
        "freeze": [{"from": _utc(window["from"]), "until": _utc(window["until"]), "reason": window.get("reason", "")}
                   for window in policy.get("freeze", [])],
        "request_hours": policy.get("request_hours", DEFAULT_REQUEST_HOURS),
    }


def _policy_changes(model: str, wanted: dict, live: dict, prune: dict) -> list[Change]:
    found = []
    for alias, policy in wanted.items():
        want, have = normal_policy(policy), live.get(alias)
        if want != have:
            found.append(Change("policy", "create" if have is None else "update", f"models/{model}/policies/{alias}",
                                have, want, model, alias))
    if prune.get("policies"):
        found += [Change("policy", "delete", f"models/{model}/policies/{alias}", have, None, model, alias)
                  for alias, have in live.items() if alias not in wanted]
    return found


def _alias_changes(client: RegistryClient, model: str, wanted: dict, live: dict, prune: dict,
                   problems: list[str], planned: dict) -> list[Change]:
    """Moves to what ``wanted`` names; an alias that serves the version its ``planned`` rollout put there
    matches too (the file then names the version it served before)."""
    found = []
    for alias, want in wanted.items():
        where = f"models/{model}/aliases/{alias}"
        if versions.pinned(client, model, want, where, problems) is None:
            continue
        have = live.get(alias)
        if have != want and not _rolled_out(have, planned.get(alias)):
            waiting = next((request for request in client.approval_requests(model, alias, state="open")
                            if request.version == want["version"]), None)
            found.append(Change("alias", "create" if have is None else "update", where, have, want, model, alias,
                                waiting=waiting))
    if prune.get("aliases"):
        found += [Change("alias", "delete", f"models/{model}/aliases/{alias}", have, None, model, alias)
                  for alias, have in live.items() if alias not in wanted]
    return found


def _rolled_out(have: dict | None, rollout: dict | None) -> bool:
    """Whether the alias serves (``have``) the version its declared ``rollout`` rolls out."""
    return have is not None and rollout is not None and have == {"version": rollout["version"],
                                                                 "sha256": rollout["sha256"]}


def _move(client: RegistryClient, change: Change, reason: str) -> tuple[str, str]:
    """Promote the version the alias should serve; when the alias's policy lacks only approvals, open the
    request that gathers them."""
    version = change.after["version"]
    try:
        client.promote(change.model, version, change.name, reason=reason)
    except RegistryError as exc:
        missing = exc.problem.get("missing") if exc.status == 409 else None
        if not missing or {rule.get("rule") for rule in missing} != {"approvals"}:
            raise
        return "waiting", waits(client.request_approval(change.model, change.name, version, reason=reason))
    return "done", ""


def _utc(moment: str) -> str:
    """An ISO 8601 instant as the registry writes it: in UTC, ``Z``."""
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if parsed.tzinfo is None:  # as the registry reads it
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
