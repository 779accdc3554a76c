"""Copying a store to another (a local directory to S3), every object verified where it lands."""
from dataclasses import dataclass, field

from registry.artifacts.gc import Progress, no_progress
from registry.artifacts.local_store import LocalStore
from registry.artifacts.store import ArtifactStore, StoredFile


@dataclass
class Migrated:
    """What one run copied, found already in place (intact), or could not copy and why."""

    copied: list[StoredFile] = field(default_factory=list)
    present: list[StoredFile] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # sha256 -> why

    @property
    def copied_bytes(self) -> int:
        """What crossed the network."""
        return sum(found.size for found in self.copied)


def migrate_store(source: LocalStore, target: ArtifactStore, *, progress: Progress = no_progress) -> Migrated:
    """Copy every artifact of ``source`` that ``target`` lacks or holds damaged; an artifact found intact
    in ``target`` (an earlier, interrupted run) is not copied again, so the run can be resumed.

    A damaged source file is reported, never copied; the target re-hashes each object it receives.
    """
    artifacts = [found for found in source.files() if found.sha256 is not None]
    migrated = Migrated()
    for found in progress(artifacts, len(artifacts)):
        if target.check(found.sha256) == "ok":
            migrated.present.append(found)
        elif (status := source.check(found.sha256)) != "ok":
            migrated.failed[found.sha256] = f"the source file is {status}"
        else:
            with source.path_for(found.sha256).open("rb") as f:
                target.put_file(f, found.sha256, found.size)
            migrated.copied.append(found)
    return migrated
