"""The prediction log's table: one row per logged request, and its label once feedback brings it."""
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import db
from registry.tables import UTCDateTime

# SQLite numbers rows only through an INTEGER PRIMARY KEY; PostgreSQL may outgrow 32 bits here.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class LoggedPrediction(db.Model):
    """A request a version answered (or failed): who asked, with what, what came back, how fast."""

    __tablename__ = "prediction_log"
    __table_args__ = (
        Index("ix_prediction_log_model_id_at", "model_id", "at"),
        Index("ix_prediction_log_model_id_request_id", "model_id", "request_id"),
        Index("ix_prediction_log_at", "at"),
        # SQLite hands an INTEGER PRIMARY KEY the largest id + 1, so an emptied table would give old ids
        # again; AUTOINCREMENT never does, and the export's high-water marks (LogExport) rely on it.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: asked by version number
    route: Mapped[str | None] = mapped_column(String(16), nullable=True)  # primary, canary; None outside rollouts
    inputs: Mapped[list | None] = mapped_column(JSON, nullable=True)  # the rows in signature order
    outputs: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # predictions (probabilities), or the error
    # The rows' attributions when the model's log asks for them (prediction_log.explain): see
    # registry/monitoring/logged_explanations.py for the shape; None when not drawn or not explainable.
    explanations: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    label: Mapped[object | None] = mapped_column(JSON, nullable=True)  # the truth, once feedback told it
    labelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the row counts for against PREDICTION_LOG_MAX_MB (log_bounds.row_bytes), fixed when written.
    bytes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Whether a rollout's gates weigh the answer: False once its sticky key had sent KEY_WEIGHT requests
    # to the arm in that process (registry/serving/key_units.py), so one key cannot fill the quality gate.
    weighed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The request's W3C trace id (32 hex digits) when it was traced (OpenTelemetry on): its spans' trace.
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class DriftReference(db.Model):
    """What a version's inputs and predictions are compared with: a profile of the rows it was trained
    or evaluated on (made when they were sent), and a few of those rows for a rollout's agreement gate."""

    __tablename__ = "drift_references"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # training or evaluation
    rows: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict] = mapped_column(JSON)  # {"features": {name: profile}, "predictions": profile}
    # A few of its rows, in the signature's order: a rollout's agreement gate scores both arms on rows no
    # caller chose (references.GATE_ROWS of them, drawn evenly; never shown by any route).
    gate_rows: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))


class VersionHealth(db.Model):
    """The last figures the monitoring sweep computed for a served version (what /metrics shows, and
    what the next sweep compares with to tell a new drift)."""

    __tablename__ = "version_health"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    figures: Mapped[dict] = mapped_column(JSON)  # the monitoring answer over MONITOR_WINDOW
    drifted: Mapped[list] = mapped_column(JSON)  # the drifted columns (feature names, "predictions")


class LogExport(db.Model):
    """How far a model's prediction log went to the lake (PREDICTION_LOG_EXPORT): every row of the model
    with an id up to ``exported_id`` is in a Parquet file the lake's manifest lists, and only those rows
    may be pruned. An export under way names its rows (``pending_id``) first, so that one cut short is
    done again over the same rows, into the same files."""

    __tablename__ = "prediction_log_exports"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    exported_id: Mapped[int] = mapped_column(ROW_ID, default=0)  # the high-water mark
    pending_id: Mapped[int | None] = mapped_column(ROW_ID, nullable=True)  # an export of (exported_id, pending_id] under way
    rows: Mapped[int] = mapped_column(BigInteger, default=0)  # exported in all
    # Every row of the model answered before this went to the lake (the oldest one left, at the last export).
    before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    exported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # attempts failed since the last that succeeded
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why the last attempt failed
