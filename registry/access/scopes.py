"""Per-model access: the rights a token has, and on which models.

A role is a set of rights on every model (admin: all of them). A token may instead be scoped: a list
of grants, each some of its role's rights on the models a list of patterns names (a model's name, or
a prefix ending in ``*``: ``team-a-*``). On a model no grant names, a scoped token has no right at all.
Admin tokens are never scoped: an admin manages tokens, webhooks and the ledger, which belong to no
model, so a scoped admin could make itself an unscoped one.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from registry.errors import InvalidInput

READ, PREDICT, UPLOAD, PROMOTE, APPROVE, READ_INPUTS, FEEDBACK = (
    "read", "predict", "upload", "promote", "approve", "read_inputs", "feedback")
RIGHTS = (READ, PREDICT, UPLOAD, PROMOTE, APPROVE, READ_INPUTS, FEEDBACK)
ROLE_RIGHTS = {
    "admin": frozenset(RIGHTS),
    "ci": frozenset({READ, PREDICT, UPLOAD, PROMOTE, APPROVE, FEEDBACK}),
    "reader": frozenset({READ, PREDICT}),
    "feedback": frozenset({READ, PREDICT, FEEDBACK}),
    "analyst": frozenset({READ, PREDICT, READ_INPUTS}),
    "metrics": frozenset(),  # scrapes /metrics (api/auth.py), and holds no right on any model
}
MAX_GRANTS = 50
MAX_PATTERNS = 100
# A model name (registry/names.py), or a prefix of one followed by a single '*'.
PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}|[A-Za-z0-9._-]{0,127}\*")


@dataclass(frozen=True)
class Grant:
    """Some rights on the models some patterns name."""

    models: tuple[str, ...]
    rights: frozenset[str]

    def names(self, model: str) -> bool:
        """Whether one of the patterns names ``model``: exactly, case and all, on every backend (the one test of
        a name against a scope: the model list asks it too, through :func:`holds`, never a database's LIKE)."""
        return any(model.startswith(p[:-1]) if p.endswith("*") else model == p for p in self.models)

    def to_dict(self) -> dict:
        """The JSON shape stored with the token and shown by the API."""
        return {"models": list(self.models), "rights": [right for right in RIGHTS if right in self.rights]}


def rights_of(role: str, scopes: tuple[Grant, ...] | None, model: str | None) -> frozenset[str]:
    """The rights a token of ``role`` and ``scopes`` has on ``model`` (None: on every model, unscoped only)."""
    if scopes is None:
        return ROLE_RIGHTS[role]
    if model is None:
        return frozenset()
    held = frozenset().union(*(grant.rights for grant in scopes if grant.names(model)))
    return held & ROLE_RIGHTS[role]


def holds(right: str, role: str, scopes: tuple[Grant, ...] | None) -> Callable[[str], bool] | None:
    """Whether a token of ``role`` and ``scopes`` holds ``right`` on a model, as a test of the model's name: the
    test a route of that model makes (:func:`rights_of`), for a list to keep what the token may see. None:
    the token is unscoped, and holds its role's rights on every model."""
    if scopes is None:
        return None
    return lambda model: right in rights_of(role, scopes, model)


def checked_scopes(role: str, raw: list[dict] | None) -> tuple[Grant, ...] | None:
    """The grants of a token of ``role`` as sent (one ``{"models": [...], "rights": [...]}`` or a list of
    them), checked: a right the role lacks, an unknown right or a pattern no model name fits is 422 naming it."""
    if raw is None:
        return None
    if isinstance(raw, dict):
        raw = [raw]
    if role == "admin":
        raise InvalidInput("an admin token cannot be scoped to models (it manages tokens, webhooks and the ledger, "
                           "which belong to no model): scope a ci, reader, feedback or analyst token",
                           errors={"scopes": ["admin tokens are never scoped"]})
    if not ROLE_RIGHTS[role]:
        raise InvalidInput(f"a {role} token cannot be scoped to models: it holds no right on any model, and what it "
                           "reads (/metrics) names every model; create it without scopes",
                           errors={"scopes": [f"{role} tokens are never scoped"]})
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_GRANTS or not all(isinstance(g, dict) for g in raw):
        raise InvalidInput(f"scopes must be a grant {{models, rights}} or a list of 1 to {MAX_GRANTS} of them",
                           errors={"scopes": ["a grant or a list of grants"]})
    problems, grants = {}, []
    for i, grant in enumerate(raw):
        models, rights = grant.get("models"), grant.get("rights")
        if not isinstance(models, list) or not 1 <= len(models) <= MAX_PATTERNS or \
                not all(isinstance(p, str) and PATTERN.fullmatch(p) for p in models):
            slashed = isinstance(models, list) and any(isinstance(p, str) and "/" in p for p in models)
            problems[f"scopes.{i}.models"] = [f"1 to {MAX_PATTERNS} model names, or prefixes ending in * (team-a-*)"
                                              + ("; a model's name holds no '/'" if slashed else "")]
        if not isinstance(rights, list) or not rights or not all(isinstance(r, str) for r in rights):
            problems[f"scopes.{i}.rights"] = [f"a list of rights among {', '.join(RIGHTS)}"]
        else:
            unknown = [r for r in rights if r not in RIGHTS]
            beyond = [r for r in rights if r in RIGHTS and r not in ROLE_RIGHTS[role]]
            if unknown:
                problems[f"scopes.{i}.rights"] = [f"unknown right(s) {', '.join(unknown)}: use {', '.join(RIGHTS)}"]
            elif beyond:
                problems[f"scopes.{i}.rights"] = [f"role {role!r} has no right {', '.join(beyond)}"]
        if f"scopes.{i}.models" not in problems and f"scopes.{i}.rights" not in problems:
            grants.append(Grant(tuple(models), frozenset(rights)))
    if problems:
        detail = "; ".join(f"{where}: {msgs[0]}" for where, msgs in problems.items())
        raise InvalidInput(f"the token's scopes are not valid: {detail}", errors=problems)
    return tuple(grants)


def stored(scopes: tuple[Grant, ...] | None) -> list[dict] | None:
    """The JSON the token row keeps."""
    return None if scopes is None else [grant.to_dict() for grant in scopes]


def loaded(data: list[dict] | None) -> tuple[Grant, ...] | None:
    """The grants of a token row's JSON."""
    return None if data is None else tuple(Grant(tuple(g["models"]), frozenset(g["rights"])) for g in data)
