"""What the ledger's chain says each alias answers and each policy is, replayed entry by entry, and the
live rows that differ from it: an alias row or a rollout's split changed in the database, a policy row
deleted (which would leave its alias unguarded) or rewritten there.

The replay, for each (model, alias), from the entries in the chain's order:

- the alias's version: ``to_version`` of its latest ``promote``, ``break_glass``, ``rollback`` or
  ``rollout_promote``; none after a ``delete``;
- its rollout: the versions, percents, sticky header and rollout id a rollout entry's ``details`` record
  (``settings`` of :mod:`registry.aliases.rollout_report`); none after ``rollout_promote`` or ``rollout_abort``;
- its policy: the document of its latest ``policy_set``; none after a ``policy_delete``.
"""
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import aliased

from registry.aliases.time_travel import POINTS_ALIAS, REMOVES_ALIAS
from registry.db import db
from registry.governance.tables import AliasPolicy
from registry.tables import Alias, ModelVersion, RegisteredModel, Rollout

ROLLOUT_ENDS = ("rollout_promote", "rollout_abort")
SPLIT = ("rollout_id", "canary", "shadow", "sticky_header")  # what a rollout entry records of the split


@dataclass(frozen=True)
class Said:
    """What the chain says of one thing (None: it is not there), and the entry that said it last."""

    value: object
    entry: int
    at: datetime


@dataclass(frozen=True)
class Difference:
    """A live row that differs from what the chain says: the entry that said it last (None: none ever did)."""

    entry: int | None
    at: datetime | None
    detail: str


@dataclass
class Replay:
    """The aliases' versions, their rollouts' splits and their policies, as the entries read so far say."""

    versions: dict[tuple[int, str], Said] = field(default_factory=dict)
    splits: dict[tuple[int, str], Said] = field(default_factory=dict)
    policies: dict[tuple[int, str], Said] = field(default_factory=dict)

    def read(self, row) -> None:
        """Take in one entry of the chain (read in the chain's order)."""
        if row.model_id is None or row.alias is None:
            return
        key, action = (row.model_id, row.alias), row.action
        if action in POINTS_ALIAS or action in REMOVES_ALIAS:  # as time travel replays the alias map
            self.versions[key] = Said(row.to_version if action in POINTS_ALIAS else None, row.id, row.at)
        if action.startswith("rollout_"):
            details = row.details or {}
            split = None if action in ROLLOUT_ENDS else {name: details.get(name) for name in SPLIT if name in details}
            self.splits[key] = Said(split, row.id, row.at)
        if action == "policy_set":
            self.policies[key] = Said((row.details or {}).get("policy"), row.id, row.at)
        elif action == "policy_delete":
            self.policies[key] = Said(None, row.id, row.at)

    def differences(self) -> list[Difference]:
        """Every live alias row, running rollout and policy row that differs from what the chain says."""
        names = dict(db.session.execute(select(RegisteredModel.id, RegisteredModel.name)).all())
        found = []
        found += _compare("alias", self.versions, _live_versions(), names, _version_words)
        found += _compare("rollout", self.splits, _live_splits(), names, _split_words)
        found += _compare("policy", self.policies, _live_policies(), names, _policy_words)
        return found


def _compare(thing: str, said: dict, live: dict, names: dict, words) -> list[Difference]:
    found = []
    for key in sorted(set(said) | set(live), key=lambda key: (key[0], key[1])):
        told = said.get(key)
        chain, here = (told.value if told is not None else None), live.get(key)
        if _same(thing, chain, here):
            continue
        model, alias = names.get(key[0], f"#{key[0]}"), key[1]
        by = f"(entry {told.entry})" if told is not None else "(no entry ever set it)"
        if isinstance(chain, dict) and isinstance(here, dict) and words(chain) == words(here):
            members = sorted(name for name in {*chain, *here} if chain.get(name) != here.get(name))
            differ = f"{', '.join(members)} in the database differ from what the chain says {by}"
        else:
            differ = f"{words(here)} in the database, the chain says {words(chain)} {by}"
        found.append(Difference(told.entry if told is not None else None, told.at if told is not None else None,
                                f"the {thing} of {alias!r} of {model!r}: {differ}: the row was changed outside "
                                "the registry"))
    return found


def _same(thing: str, chain, here) -> bool:
    if thing == "rollout" and chain is not None and here is not None:  # older entries record fewer members
        return all(here.get(name) == value for name, value in chain.items())
    return chain == here


def _live_versions() -> dict[tuple[int, str], int]:
    rows = db.session.execute(select(Alias.model_id, Alias.name, ModelVersion.number)
                              .join(ModelVersion, ModelVersion.id == Alias.version_id))
    return {(model_id, alias): number for model_id, alias, number in rows}


def _live_splits() -> dict[tuple[int, str], dict]:
    """The running rollouts' splits, in the form their entries record them (``settings``), read column by
    column (so at any schema that has them)."""
    canary, shadow = aliased(ModelVersion), aliased(ModelVersion)
    running = db.session.execute(
        select(Rollout.id, Rollout.model_id, Rollout.alias, canary.number, Rollout.canary_percent, shadow.number,
               Rollout.shadow_percent, Rollout.sticky_header)
        .outerjoin(canary, canary.id == Rollout.canary_version_id)
        .outerjoin(shadow, shadow.id == Rollout.shadow_version_id)
        .where(Rollout.ended_at.is_(None))
    ).all()
    return {(model_id, alias): {"rollout_id": id, "canary": _arm(canary_number, canary_percent),
                                "shadow": _arm(shadow_number, shadow_percent), "sticky_header": header}
            for id, model_id, alias, canary_number, canary_percent, shadow_number, shadow_percent, header in running}


def _arm(version: int | None, percent: float | None) -> dict | None:
    return {"version": version, "percent": percent} if version is not None else None


def _live_policies() -> dict[tuple[int, str], dict]:
    rows = db.session.execute(select(AliasPolicy.model_id, AliasPolicy.alias, AliasPolicy.document))
    return {(model_id, alias): document for model_id, alias, document in rows}


def _version_words(version: int | None) -> str:
    return f"version {version}" if version is not None else "no alias row"


def _split_words(split: dict | None) -> str:
    if split is None:
        return "no running rollout"
    arms = [f"{arm} version {split[arm]['version']} at {split[arm]['percent']:g} %" for arm in ("canary", "shadow")
            if split.get(arm)]
    return ", ".join(arms) or "a rollout with no arm"


def _policy_words(document: dict | None) -> str:
    if document is None:
        return "no policy"
    return f"a policy of {document.get('approvals', 0)} approval(s)"
