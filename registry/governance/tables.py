"""A protected alias's policy, the requests to move it, and the approvals they gather."""
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db import db
from registry.tables import ModelVersion, RegisteredModel, UTCDateTime, utcnow


class AliasPolicy(db.Model):
    """The rules a move of one alias must meet (the checked document, as :mod:`registry.governance.policy` reads it)."""

    __tablename__ = "alias_policies"
    __table_args__ = (UniqueConstraint("model_id", "alias", name="uq_alias_policies_model_id_alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApprovalRequest(db.Model):
    """A request to point a protected alias at a version (or to start a canary of it): open until approved
    enough (then ``done``, the alias moved or the rollout started), rejected, withdrawn, or expired."""

    __tablename__ = "approval_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    state: Mapped[str] = mapped_column(String(16))  # open | done | rejected | withdrawn | expired
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(128))
    # The person behind the requester's token (the migration's empty default is never left: the code names one).
    requester_owner: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    requester_role: Mapped[str] = mapped_column(String(16))
    # A signed-in requester's groups (the policy's movers.groups may be why they may move the alias); None for a token.
    requester_groups: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    close_reason: Mapped[str] = mapped_column(Text, default="")
    event_id: Mapped[int | None] = mapped_column(ForeignKey("promotion_events.id"), nullable=True)  # the move made
    # A request for a canary rather than a promote: {"percent", "plan", "sticky_header"} (None: a promote), and
    # the rollout its final approval started (whose later steps carry its approvals).
    rollout: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    rollout_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a rollout's id (rollouts stay)

    model: Mapped[RegisteredModel] = relationship(lazy="joined")
    version: Mapped[ModelVersion] = relationship(lazy="joined")
    approvals: Mapped[list["Approval"]] = relationship(lazy="selectin", order_by="Approval.id")

    @property
    def number(self) -> int:
        """The version the request asks for."""
        return self.version.number


class Approval(db.Model):
    """One person's approval of a request (at most one each, whichever of their tokens gave it)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver", name="uq_approvals_request_id_approver"),
                      Index("uq_approvals_request_id_owner", "request_id", "owner", unique=True))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    approver: Mapped[str] = mapped_column(String(128))
    # The person behind the approver's token: one approval each.
    owner: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The policy it was given under: the id of the alias's policy_set history entry then in force
    # (registry/governance/standing.py says when it counts under a later one).
    policy_entry: Mapped[int | None] = mapped_column(Integer, nullable=True)
