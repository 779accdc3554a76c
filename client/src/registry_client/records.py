"""What the registry answers, as dataclasses.

Each record takes the fields it names from the JSON answer and keeps the whole answer in ``raw``,
so a field a newer registry adds is readable before this client knows it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 timestamp of the API (``…Z``) as an aware datetime; None stays None."""
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of every answer: the named fields, plus ``raw``, the JSON object as answered."""

    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls: type[R], body: dict) -> R:
        """The record of a JSON object: missing fields are None, unknown ones stay in ``raw``."""
        values = {}
        for item in fields(cls):
            if item.name == "raw":
                continue
            value = body.get(item.name)
            if item.name.endswith("_at"):
                value = parse_time(value)
            values[item.name] = value
        return cls(raw=body, **cls._nested(values))

    @classmethod
    def _nested(cls, values: dict) -> dict:
        return values


@dataclass(frozen=True, kw_only=True)
class Feature(Record):
    """One input column of a version's signature."""

    name: str
    dtype: str


@dataclass(frozen=True, kw_only=True)
class Signature(Record):
    """The columns a version takes, in order, and the classes a classifier answers."""

    features: list[Feature]
    classes: list | None

    @property
    def names(self) -> list[str]:
        """The feature names in signature order."""
        return [feature.name for feature in self.features]

    @classmethod
    def _nested(cls, values: dict) -> dict:
        return {**values, "features": [Feature.from_json(item) for item in values["features"] or []]}


@dataclass(frozen=True, kw_only=True)
class Model(Record):
    """A registered model with its alias map."""

    name: str
    description: str
    tags: dict[str, str]
    latest_version: int | None
    aliases: dict[str, int]
    version_count: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True)
class Version(Record):
    """A version of a model: what it is, what it was trained on, and where it is served."""

    model: str
    version: int
    status: str
    kind: str
    task: str
    estimator: str
    framework: str  # the library the model comes from: scikit-learn, xgboost or lightgbm
    steps: list[str] | None
    signature: Signature
    metrics: dict[str, float]
    params: dict[str, Any]
    tags: dict[str, str]
    description: str
    intended_use: str
    limitations: str
    lineage: dict[str, Any]
    input_example: list | None
    sha256: str
    size_bytes: int
    sklearn_version: str | None
    aliases: list[str]
    created_at: datetime
    created_by: str

    @classmethod
    def _nested(cls, values: dict) -> dict:
        return {**values, "signature": Signature.from_json(values["signature"] or {})}


@dataclass(frozen=True, kw_only=True)
class Move(Record):
    """What a promote or rollback did to an alias."""

    model: str
    alias: str
    version: int
    previous_version: int | None
    event_id: int | None


@dataclass(frozen=True, kw_only=True)
class Event(Record):
    """One entry of a model's history (promote, rollback, delete, rollout events)."""

    id: int
    alias: str
    from_version: int | None
    to_version: int | None
    action: str
    actor: str
    reason: str
    forced: bool
    at: datetime
    details: dict | None

    @classmethod
    def _nested(cls, values: dict) -> dict:
        return {**values, "at": parse_time(values["at"])}


@dataclass(frozen=True, kw_only=True)
class Rollout(Record):
    """An alias's rollout and its live figures (``primary``, ``canary``, ``shadow`` as answered)."""

    model: str
    alias: str
    started_at: datetime
    started_by: str
    reason: str
    sticky_header: str | None
    ended_at: datetime | None
    primary: dict
    canary: dict | None
    shadow: dict | None
    plan: dict | None


@dataclass(frozen=True, kw_only=True)
class Evaluation(Record):
    """A version's metrics on a named dataset."""

    id: int
    model: str
    version: int
    dataset: dict
    metrics: dict[str, float]
    note: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True, kw_only=True)
class BatchRun(Record):
    """A scoring job run outside the registry, recorded against the version that scored it."""

    id: int
    model: str
    version: int
    alias: str | None
    engine: str
    inputs: list[str]
    outputs: list[str]
    rows: int
    status: str
    detail: str
    started_at: datetime
    finished_at: datetime
    created_at: datetime
    created_by: str


@dataclass(frozen=True, kw_only=True)
class Prediction(Record):
    """A predict answer, with the version that computed it and how the request was routed; with
    ``explain``, each row's ``{"base_value", "values"}``, the space they are in (``explanation_space``) and
    what they are measured from (``explanation_baseline``)."""

    model: str
    version: int
    predictions: list
    probabilities: list[list[float]] | None
    classes: list | None
    request_id: str | None = None
    route: str | None = None
    explanations: list[dict] | None = None
    explanation_space: str | None = None
    explanation_baseline: str | None = None


@dataclass(frozen=True, kw_only=True)
class Policy(Record):
    """A protected alias's policy: who may move it, what a version must show, approvals, freeze windows."""

    model: str
    alias: str
    policy: dict
    updated_by: str
    updated_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ApprovalRequest(Record):
    """A request to point a protected alias at a version (or with ``rollout``, to start a canary of it): its state,
    approvals, and what it still lacks."""

    id: int
    model: str
    alias: str
    version: int
    state: str  # open, done (the alias moved or the rollout started), rejected, withdrawn or expired
    reason: str
    requested_by: str
    approvals: list[dict]
    approvals_needed: int
    missing: list[dict] | None = None
    evidence: dict | None = None
    event_id: int | None = None
    opened_at: datetime | None = None
    expires_at: datetime | None = None
    closed_at: datetime | None = None
    rollout: dict | None = None  # the rollout a request for a canary asks for; None: a promote


@dataclass(frozen=True, kw_only=True)
class Inference(Record):
    """An Open Inference Protocol (V2) answer; ``outputs`` maps each output's name to its data."""

    model_name: str
    model_version: str
    id: str | None
    outputs: dict[str, list]

    @classmethod
    def _nested(cls, values: dict) -> dict:
        return {**values, "outputs": {item["name"]: item["data"] for item in values["outputs"] or []}}


@dataclass(frozen=True, kw_only=True)
class Token(Record):
    """An API token as listed (never the secret itself)."""

    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    owner: str | None = None
    scopes: list[dict] | None = None  # None: the role's rights on every model


@dataclass(frozen=True, kw_only=True)
class NewToken(Record):
    """A token just created: ``token`` is shown only this once."""

    name: str
    role: str
    token: str
    created_at: datetime
    owner: str | None = None
    scopes: list[dict] | None = None


@dataclass(frozen=True, kw_only=True)
class FeedbackResult(Record):
    """How many labels applied, and why the others did not."""

    applied: int
    replaced: int
    errors: list[dict]


@dataclass(frozen=True, kw_only=True)
class Webhook(Record):
    """A webhook subscription as listed (never its secret)."""

    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class NewWebhook(Webhook):
    """A subscription just made: ``secret`` (``whsec_…``) is shown only this once."""

    secret: str
