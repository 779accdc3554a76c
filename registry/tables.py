"""ORM tables: models, versions, aliases, promotion events (the audit log) and its chain's head, rollouts,
evaluations and API tokens."""
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry import ledger
from registry.db import db


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(db.TypeDecorator):
    """A timestamp stored naive-UTC (SQLite keeps no zone) and always read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value is not None else None

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class RegisteredModel(db.Model):
    """A named model; its versions are numbered 1, 2, 3 … by ``last_version``."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    # The share of its requests the prediction log records (None: PREDICTION_LOG_SAMPLE's).
    prediction_log_sample: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The most its log may hold, in MB, when it asks for less than its fair share of PREDICTION_LOG_MAX_MB.
    prediction_log_max_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The share of its logged answers whose explanations the log's writer computes and keeps (None: none).
    prediction_log_explain: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    versions: Mapped[list["ModelVersion"]] = relationship(back_populates="model", lazy="raise")
    aliases: Mapped[list["Alias"]] = relationship(back_populates="model", lazy="selectin")

    @property
    def alias_map(self) -> dict[str, int]:
        """``{alias: version number}`` for every alias set on this model."""
        return {a.name: a.version.number for a in sorted(self.aliases, key=lambda a: a.name)}


class ModelVersion(db.Model):
    """One uploaded artifact of a model, with what introspection and the uploader said of it."""

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("model_id", "number", name="uq_versions_model_id_number"),
        UniqueConstraint("model_id", "sha256", name="uq_versions_model_id_sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ready")
    kind: Mapped[str] = mapped_column(String(16))
    task: Mapped[str] = mapped_column(String(16))
    estimator: Mapped[str] = mapped_column(String(255))
    steps: Mapped[list | None] = mapped_column(JSON, nullable=True)
    signature: Mapped[dict] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    lineage: Mapped[dict] = mapped_column(JSON, default=dict)
    input_example: Mapped[list | None] = mapped_column(JSON, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    intended_use: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    limitations: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sklearn_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The library the model comes from: scikit-learn, xgboost or lightgbm.
    framework: Mapped[str] = mapped_column(String(32), default="scikit-learn", server_default="scikit-learn")
    # Whether its rows can be explained, as its upload found (registry/serving/explain_bounds.py: verdict), why not,
    # and what one row's explanation costs (node-points; a tree model's); all None for versions uploaded before.
    explainable: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    explainable_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    explain_row_cost: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    model: Mapped[RegisteredModel] = relationship(back_populates="versions", lazy="joined")

    @property
    def alias_names(self) -> list[str]:
        """Names of the aliases that point at this version."""
        return sorted(a.name for a in self.model.aliases if a.version_id == self.id)


class Alias(db.Model):
    """A movable name (``production``, ``staging``…) pointing at one version of a model."""

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_aliases_model_id_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    model: Mapped[RegisteredModel] = relationship(back_populates="aliases")
    version: Mapped[ModelVersion] = relationship(lazy="joined")


class PromotionEvent(db.Model):
    """One alias move or rollout change, append-only. A rollback names the oldest promote it undoes.

    Each entry is a link of the ledger's hash chain (registry/ledger.py): ``prev_hash`` is the hash of
    the entry before it, ``hash`` that of its own canonical form; both are set as it is inserted.
    """

    __tablename__ = "promotion_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Both None for an entry of no model: a token's creation (with its scopes) or revocation.
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), index=True, nullable=True)
    alias: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(16))  # promote | rollback | delete | rollout_start|change|promote|abort | token_create|token_revoke
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the alias was deleted
    reverts_event_id: Mapped[int | None] = mapped_column(ForeignKey("promotion_events.id"), nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # a rollout's versions, percents, figures
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class LedgerHead(db.Model):
    """The head of the ledger's hash chain (one row): how many entries it has, the last one's id and hash.

    Appending locks it, so writers of the history queue and the chain never forks."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entries: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hash: Mapped[str] = mapped_column(String(64))


@event.listens_for(PromotionEvent, "before_insert")
def _link_to_the_chain(mapper, connection, entry) -> None:
    """Every history entry joins the chain as it is inserted, whichever use case writes it."""
    ledger.link(connection, entry, head=LedgerHead.__table__, entries=PromotionEvent.__table__)


class Rollout(db.Model):
    """A canary and/or shadow on an alias; active while ``ended_at`` is empty (one per alias)."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    canary_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), nullable=True)
    canary_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    shadow_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), nullable=True)
    shadow_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    sticky_header: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Canary requests also run on the primary after the answer, to compare (a plan's agreement gate).
    mirror: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reason: Mapped[str] = mapped_column(Text, default="")
    started_by: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    model: Mapped[RegisteredModel] = relationship(lazy="joined")
    canary: Mapped[ModelVersion | None] = relationship(foreign_keys=[canary_version_id], lazy="joined")
    shadow: Mapped[ModelVersion | None] = relationship(foreign_keys=[shadow_version_id], lazy="joined")


class RolloutPlan(db.Model):
    """The plan a rollout walks by itself: its steps, its gates, where it is, and why (one per rollout).

    Everything the controller knows is here, so whichever process holds the lease next carries on.
    """

    __tablename__ = "rollout_plans"

    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    steps: Mapped[list] = mapped_column(JSON)  # [{"percent", "min_requests", "max_minutes"}]
    gates: Mapped[dict] = mapped_column(JSON)  # {"error_rate": {...}, "latency": {...}, "agreement": ..., "quality": ...}
    on_success: Mapped[str] = mapped_column(String(16))  # promote, or halt at the last step
    step: Mapped[int] = mapped_column(Integer, default=0)  # the index of the step running
    state: Mapped[str] = mapped_column(String(16))  # running, paused, halted, promoted, aborted
    detail: Mapped[str] = mapped_column(Text, default="")  # why it is in its state, in words
    step_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    baseline: Mapped[dict] = mapped_column(JSON, default=dict)  # the arms' totals when the step began
    looks: Mapped[dict] = mapped_column(JSON, default=dict)  # per gate: the samples at its last look this step
    verdicts: Mapped[dict] = mapped_column(JSON, default=dict)  # per gate: its last answer
    figures: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the step's figures those answers rest on
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolloutStats(db.Model):
    """One process's running totals for one role and version of a rollout; the sum over rows is the figure."""

    __tablename__ = "rollout_stats"
    __table_args__ = (
        UniqueConstraint("rollout_id", "process", "role", "version", name="uq_rollout_stats_rollout_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"))
    process: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(8))  # primary | canary | shadow
    version: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_buckets: Mapped[list] = mapped_column(JSON, default=list)  # counts per figures.LATENCY_BUCKETS_MS
    compared: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    agreed: Mapped[int] = mapped_column(BigInteger, default=0)
    abs_diff_sum: Mapped[float] = mapped_column(Float, default=0.0)
    abs_diff_max: Mapped[float] = mapped_column(Float, default=0.0)
    # For the interval of the mean difference (a server default: rows from before it count none).
    abs_diff_sq_sum: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    refused: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))  # the caller's faults
    # What the gates weigh (figures.Tally): requests within their key's weight, per batch-size class.
    weighed: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    weighed_errors: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    latency_by_rows: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    key_epoch: Mapped[float | None] = mapped_column(Float, nullable=True)  # the split the keys were seen in
    key_sketch: Mapped[str | None] = mapped_column(Text, nullable=True)  # their HyperLogLog sketch (key_units)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Evaluation(db.Model):
    """A score of one version on a named dataset; versions scored on the same dataset compare fairly."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    dataset_name: Mapped[str] = mapped_column(String(255))
    dataset_sha256: Mapped[str] = mapped_column(String(64), index=True)
    rows: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))

    version: Mapped[ModelVersion] = relationship(lazy="joined")

    @property
    def number(self) -> int:
        """The evaluated version's number."""
        return self.version.number


class ApiToken(db.Model):
    """A bearer token, stored as its sha256; the plain token is shown once at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # The person the token belongs to (an e-mail, a name): approvals count owners, not tokens.
    owner: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # None: the role's rights on every model; else its grants (registry/access/scopes.py).
    scopes: Mapped[list | None] = mapped_column(JSON, nullable=True)


class BrowserSession(db.Model):
    """A dashboard sign-in, kept here so it can end: the cookie holds a random id, this row its sha256
    and the token's, or for a person signed in through single sign-on (no token) who they are and what
    their groups gave them. Sign-out deletes it; a revoked token or the end of its lifetime ends it too."""

    __tablename__ = "browser_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # {"name", "role", "scopes", "groups", "sub", "email", "id_token"}: set instead of token_hash.
    person: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Lease(db.Model):
    """Who holds the work named ``name``, until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
