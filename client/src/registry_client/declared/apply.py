"""Making the registry match a declared file: each change of its plan through the API's own routes, so every
policy holds and every move is an entry of the ledger whose reason names the file's sha256 (and git commit)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from registry_client.client import RegistryClient
from registry_client.declared import models, rollouts, tokens, versions, webhooks
from registry_client.declared.changes import Change
from registry_client.declared.files import Declared
from registry_client.errors import RegistryError

COMMIT = re.compile(r"[0-9a-f]{7,64}")


@dataclass(frozen=True)
class Outcome:
    """What became of one change: ``state`` done, waiting (an approval request holds it) or refused (the policy's
    ``missing`` rules, or the registry's answer, in ``detail``)."""

    change: Change
    state: str
    detail: str = ""

    def line(self) -> str:
        """The outcome as apply prints it."""
        return f"{self.state}: {self.change.line()}" + (f"\n    {self.detail}" if self.detail else "")


def reason_of(declared: Declared, commit: str | None) -> str:
    """The reason every change of an apply carries into the history: the file, its sha256, the git commit."""
    if commit is not None and not COMMIT.fullmatch(commit):
        raise ValueError(f"commit {commit!r} is not a git commit's hex id")
    name = declared.source.rsplit("/", 1)[-1]
    return f"declared state: {name} sha256 {declared.sha256}" + (f" commit {commit}" if commit else "")


def apply(client: RegistryClient, changes: list[Change], reason: str) -> list[Outcome]:
    """Make each change in order; stop at the first the registry refuses (the outcomes then end with it).
    A move that only lacks approvals opens a request for it (or finds the one already open) and goes on."""
    outcomes = []
    for change in changes:
        try:
            outcome = Outcome(change, *APPLIERS[change.kind](client, change, reason))
        except RegistryError as exc:
            outcome = Outcome(change, "refused", _refusal(exc))
        outcomes.append(outcome)
        if outcome.state == "refused":
            break
    return outcomes


APPLIERS = {"model": models.apply_change, "card": versions.apply_card, "policy": models.apply_change,
            "alias": models.apply_change, "rollout": rollouts.apply_rollout, "token": tokens.apply_change,
            "webhook": webhooks.apply_change}


def _refusal(exc: RegistryError) -> str:
    missing = exc.problem.get("missing")
    if missing:
        return "the policy refuses it; missing: " + "; ".join(
            f"{rule.get('rule')}: {rule.get('detail', '')}" for rule in missing)
    return str(exc)
