"""Facts copied out of rows while a session is open, so that work done outside it (loading a
version, serving a rollout) never touches the ORM."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # read from rows, never imported: a batch executor loads versions without the ORM
    from registry.tables import ModelVersion, Rollout


@dataclass(frozen=True)
class VersionInfo:
    """What is needed to load a version, read from its row while a session is open."""

    model: str
    number: int
    sha256: str
    task: str
    signature: dict
    status: str = "ready"
    kind: str = ""  # linear | logistic | tree | forest | boosting
    framework: str = "scikit-learn"  # the library the model comes from: scikit-learn | xgboost | lightgbm

    @classmethod
    def of(cls, row: ModelVersion) -> VersionInfo:
        """Copy the loading facts out of an ORM row."""
        return cls(row.model.name, row.number, row.sha256, row.task, row.signature, row.status, row.kind,
                   row.framework or "scikit-learn")


@dataclass(frozen=True)
class RolloutSpec:
    """A rollout as the database says it: its versions (not loaded yet) and their shares."""

    id: int
    canary: VersionInfo | None
    canary_percent: float | None
    shadow: VersionInfo | None
    shadow_percent: float | None
    sticky_header: str | None
    mirror: bool = False  # canary requests run on the primary too, for its plan's agreement gate
    started_at: float | None = None  # seconds since the epoch
    epoch: float | None = None  # names the split: the time the shares or the plan's step last changed

    @classmethod
    def of(cls, row: Rollout) -> "RolloutSpec":
        """Copy a rollout's settings out of its ORM row."""
        canary = VersionInfo.of(row.canary) if row.canary is not None else None
        shadow = VersionInfo.of(row.shadow) if row.shadow is not None else None
        started_at = row.started_at.timestamp() if row.started_at is not None else None
        epoch = row.changed_at.timestamp() if row.changed_at is not None else started_at
        return cls(row.id, canary, row.canary_percent, shadow, row.shadow_percent, row.sticky_header, bool(row.mirror),
                   started_at, epoch)
