"""Checking every artifact a version references: present, and still hashing to its sha256."""
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select

from registry.artifacts.gc import Progress, no_progress
from registry.artifacts.store import ArtifactStore
from registry.db import db, end_read
from registry.tables import ModelVersion, RegisteredModel


@dataclass(frozen=True)
class Checked:
    """One referenced artifact: ``ok``, ``damaged`` or ``missing``, and the versions that use it."""

    sha256: str
    status: str
    versions: tuple[str, ...]  # "housing v3", …

    @property
    def ok(self) -> bool:
        """True when the file is present and intact."""
        return self.status == "ok"


def verify_artifacts(store: ArtifactStore, *, progress: Progress = no_progress) -> list[Checked]:
    """Re-hash the file of every version (archived ones too), one file at a time."""
    users = _versions_by_digest()
    return [
        Checked(digest, store.check(digest), tuple(names))
        for digest, names in progress(sorted(users.items()), len(users))
    ]


def _versions_by_digest() -> dict[str, list[str]]:
    rows = db.session.execute(
        select(RegisteredModel.name, ModelVersion.number, ModelVersion.sha256)
        .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
        .order_by(RegisteredModel.name, ModelVersion.number)
    ).all()
    end_read()  # hashing may take minutes: hold no snapshot meanwhile
    users = defaultdict(list)
    for name, number, digest in rows:
        users[digest].append(f"{name} v{number}")
    return users
