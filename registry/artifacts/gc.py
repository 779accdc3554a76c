"""Collecting what crashes leave in the artifact store: files no version references, unfinished uploads,
and files named by a digest away from its place (never read there)."""
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import select

from registry.artifacts.store import ArtifactStore, StoredFile
from registry.db import db, end_read
from registry.tables import ModelVersion

Progress = Callable[[Iterable, int], Iterator]


def no_progress(items: Iterable, _total: int) -> Iterator:
    """Iterate without showing anything."""
    return iter(items)


@dataclass
class Collected:
    """What one collection removed (or, on a dry run, would remove) and what it kept."""

    dry_run: bool
    removed: list[StoredFile] = field(default_factory=list)
    kept_referenced: int = 0
    kept_recent: int = 0
    # Copies of referenced artifacts away from their place: kept (they may be the only copy), for an operator to move.
    kept_misplaced: list[StoredFile] = field(default_factory=list)

    @property
    def removed_bytes(self) -> int:
        """The space given back."""
        return sum(found.size for found in self.removed)


def collect_garbage(store: ArtifactStore, *, grace_seconds: float, dry_run: bool,
                    progress: Progress = no_progress) -> Collected:
    """Remove stored files no version references, unfinished uploads, and misplaced copies of artifacts no
    version references, older than the grace period; a dry run lists exactly what a run would remove.

    Safe while servers run: the files are listed before the rows are read, and an upload writes (or,
    for bytes already stored, touches) its file before it commits its row, so a file whose row is not
    committed yet is younger than any sensible grace period. Each file's age is looked at again just
    before it is removed.
    """
    cutoff = time.time() - grace_seconds
    found = list(store.files())
    referenced = referenced_digests()
    collected = Collected(dry_run)
    for candidate in progress(found, len(found)):
        if candidate.sha256 in referenced and candidate.misplaced:
            collected.kept_misplaced.append(candidate)
        elif candidate.sha256 in referenced:
            collected.kept_referenced += 1
        elif candidate.modified > cutoff:
            collected.kept_recent += 1
        elif dry_run or store.remove_if_older(candidate, cutoff):
            collected.removed.append(candidate)
        else:
            collected.kept_recent += 1  # written or touched since it was listed
    return collected


def referenced_digests() -> set[str]:
    """The sha256 of every version, archived ones included (their files can still be downloaded)."""
    digests = set(db.session.execute(select(ModelVersion.sha256).distinct()).scalars())
    end_read()
    return digests
