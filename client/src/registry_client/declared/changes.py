"""What apply would change: the declared file against the live registry, resource by resource, in the order
apply changes them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry_client.client import RegistryClient
from registry_client.declared.files import Declared
from registry_client.declared.live import model_state
from registry_client.records import ApprovalRequest

# The order apply works in: a model's own fields, then what its aliases serve; deletions last.
ORDER = {("model", "update"): 0, ("alias", "create"): 1, ("alias", "update"): 1, ("alias", "delete"): 9}
MARKS = {"create": "+", "update": "~", "delete": "-"}


class PlanRefused(ValueError):
    """The file names something the registry cannot be made to match (a model or version it lacks, a sha256
    that is not the version's); nothing is changed. ``problems`` lists each."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source} cannot be applied: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Change:
    """One resource apply would change: ``kind`` (model, alias), ``action`` (create, update, delete), the
    model it belongs to, the resource's ``name`` (the field or alias), and its value ``before`` and ``after``
    (None: absent). ``waiting`` is the open approval request that already asks for this alias move."""

    kind: str
    action: str
    model: str
    name: str
    before: Any
    after: Any
    waiting: ApprovalRequest | None = None

    @property
    def address(self) -> str:
        """Where the resource is in the file, e.g. ``models/churn/aliases/production``."""
        if self.kind == "model":
            return f"models/{self.model}/{self.name}"
        return f"models/{self.model}/aliases/{self.name}"

    def line(self) -> str:
        """The change as plan prints it."""
        text = f"{MARKS[self.action]} {self.address}: {_shown(self.before)} -> {_shown(self.after)}"
        if self.waiting is not None:
            request = self.waiting
            text += (f" (request {request.id} waits for approvals: {len(request.approvals)} of "
                     f"{request.approvals_needed})")
        return text


def plan(client: RegistryClient, declared: Declared) -> list[Change]:
    """Every change apply would make for ``declared``, in order; PlanRefused (before any change) when the file
    names a model or version the registry lacks, or a sha256 that is not its version's."""
    prune = declared.document.get("prune", {})
    changes: list[Change] = []
    problems: list[str] = []
    for name, wanted in declared.document.get("models", {}).items():
        live = model_state(client, name)
        if live is None:
            problems.append(f"models/{name}: the registry has no model {name!r}; upload its first version "
                            "(the file names versions, it does not make them)")
            continue
        for field in ("description", "tags"):
            if field in wanted and wanted[field] != live[field]:
                changes.append(Change("model", "update", name, field, live[field], wanted[field]))
        changes += _alias_changes(client, name, wanted.get("aliases", {}), live["aliases"], prune, problems)
    if problems:
        raise PlanRefused(declared.source, problems)
    return sorted(changes, key=lambda change: ORDER[change.kind, change.action])


def summary(changes: list[Change]) -> str:
    """The last line of a plan: how many resources each action touches."""
    if not changes:
        return "No changes: the registry matches the file."
    counts = {action: sum(change.action == action for change in changes) for action in MARKS}
    return f"Plan: {counts['create']} to add, {counts['update']} to change, {counts['delete']} to delete."


def _alias_changes(client: RegistryClient, model: str, wanted: dict, live: dict, prune: dict,
                   problems: list[str]) -> list[Change]:
    changes = []
    for alias, want in wanted.items():
        where = f"models/{model}/aliases/{alias}"
        version = client.find_version(model, want["version"])
        if version is None:
            problems.append(f"{where}: {model} has no version {want['version']}")
            continue
        if version.sha256 != want["sha256"]:
            problems.append(f"{where}: version {version.version} of {model} is sha256 {version.sha256}, "
                            f"not {want['sha256']}: the file would point at bytes it did not mean")
            continue
        if version.status == "archived":
            problems.append(f"{where}: version {version.version} of {model} is archived and serves nobody")
            continue
        have = live.get(alias)
        if have != want:
            waiting = _open_request(client, model, alias, want["version"])
            changes.append(Change("alias", "create" if have is None else "update", model, alias, have, want, waiting))
    if prune.get("aliases"):
        changes += [Change("alias", "delete", model, alias, have, None)
                    for alias, have in live.items() if alias not in wanted]
    return changes


def _open_request(client: RegistryClient, model: str, alias: str, version: int) -> ApprovalRequest | None:
    """The open approval request that asks for ``alias`` to serve ``version``, if one does."""
    return next((request for request in client.approval_requests(model, alias, state="open")
                 if request.version == version), None)


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict) and set(value) == {"version", "sha256"}:
        return f"v{value['version']} (sha256 {value['sha256'][:12]}...)"
    if isinstance(value, str):
        return repr(value)
    return str(value)
