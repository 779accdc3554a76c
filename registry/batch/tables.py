"""The batch runs table: one row per scoring job a client reports against a version."""
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db import db
from registry.tables import ModelVersion, UTCDateTime, utcnow

ENGINES = ("local", "dask", "spark")
STATUSES = ("succeeded", "failed")


class BatchRun(db.Model):
    """A finished scoring job: who ran it, on which version (planned from which alias), over which
    inputs into which outputs, how many rows, on which engine, when, and how it ended."""

    __tablename__ = "batch_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    alias: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the alias the job was planned from
    engine: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[list] = mapped_column(JSON)
    outputs: Mapped[list] = mapped_column(JSON)
    rows: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")  # why a failed run failed (its first bad row)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))

    version: Mapped[ModelVersion] = relationship(lazy="joined")

    @property
    def at(self) -> datetime:
        """When the run ended: its place in the model's history."""
        return self.finished_at

    @property
    def number(self) -> int:
        """The number of the version that scored the run."""
        return self.version.number
