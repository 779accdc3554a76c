"""What the artifact scrub last found for each artifact it checks."""
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import db
from registry.tables import UTCDateTime


class ArtifactCheck(db.Model):
    """The store's copy of one artifact as the scrub last found it: ``ok``, ``damaged`` or ``missing``.

    Kept while its artifact is served, and while its copy is not ok (whatever serves it): the
    registry's caches keep their copy of such an artifact, the last good one, until it is repaired."""

    __tablename__ = "artifact_checks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    bad_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # when it was first found not ok
