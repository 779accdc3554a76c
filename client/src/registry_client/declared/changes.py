"""What apply would change: the declared file against the live registry, resource by resource, in the order
apply changes them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from registry_client.records import ApprovalRequest

# The order apply works in: tokens (a policy may name them), models' own fields and their versions' cards (a
# policy may require them), the policies that guard their aliases, what the aliases serve, the rollouts to
# start on them, webhooks; then deletions, the guards last.
ORDER = {("token", "create"): 0, ("token", "update"): 0, ("model", "update"): 1, ("card", "update"): 1,
         ("policy", "create"): 2, ("policy", "update"): 2, ("alias", "create"): 3, ("alias", "update"): 3,
         ("rollout", "create"): 4, ("rollout", "update"): 4, ("webhook", "create"): 5, ("webhook", "update"): 5,
         ("alias", "delete"): 6, ("webhook", "delete"): 7, ("policy", "delete"): 8, ("token", "delete"): 9}
MARKS = {"create": "+", "update": "~", "delete": "-"}


class PlanRefused(ValueError):
    """The file names something the registry cannot be made to match (a model or version it lacks, a sha256
    that is not the version's, the last admin token removed); nothing is changed. ``problems`` lists each."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source} cannot be applied: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Change:
    """One resource apply would change: its ``kind`` (token, model, card, policy, alias, rollout, webhook),
    ``action`` (create, update, delete), ``address`` in the file, and its value ``before`` and ``after`` (None:
    absent). ``model`` and ``name`` say which (a model's field, a card's field, an alias, a token); ``target`` is
    what apply needs beyond them (a card's version, a webhook's id, where a secret goes); ``waiting`` the open
    approval request that already asks for an alias move; ``note`` what the line adds."""

    kind: str
    action: str
    address: str
    before: Any
    after: Any
    model: str | None = None
    name: str | None = None
    target: Any = None
    waiting: ApprovalRequest | None = None
    note: str = ""

    def line(self) -> str:
        """The change as plan prints it."""
        text = f"{MARKS[self.action]} {self.address}: {shown(self.before)} -> {shown(self.after)}"
        if self.waiting is not None:
            text += (f" (request {self.waiting.id} waits for approvals: {len(self.waiting.approvals)} of "
                     f"{self.waiting.approvals_needed})")
        return text + (f" ({self.note})" if self.note else "")


def ordered(changes: list[Change]) -> list[Change]:
    """``changes`` in the order apply makes them (stable within a kind)."""
    return sorted(changes, key=lambda change: ORDER[change.kind, change.action])


def summary(changes: list[Change]) -> str:
    """The last line of a plan: how many resources each action touches."""
    if not changes:
        return "No changes: the registry matches the file."
    counts = {action: sum(change.action == action for change in changes) for action in MARKS}
    return f"Plan: {counts['create']} to add, {counts['update']} to change, {counts['delete']} to delete."


def shown(value: Any) -> str:
    """A value as a plan line shows it: an alias's target as ``v3 (sha256 …)``, text quoted, the rest as JSON."""
    if value is None:
        return "(none)"
    if isinstance(value, dict) and set(value) == {"version", "sha256"}:
        return f"v{value['version']} (sha256 {value['sha256'][:12]}...)"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def waits(request) -> str:
    """What an open approval request still needs, as apply says it."""
    then = "the rollout starts" if getattr(request, "rollout", None) else "the alias moves"
    return (f"approval request {request.id} is open: {len(request.approvals)} of {request.approvals_needed} "
            f"approvals; {then} when the last one is given")
