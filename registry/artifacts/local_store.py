"""The artifact store in a local directory: ``root/sha256/<aa>/<sha256>``, written atomically."""
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from registry.artifacts.store import (
    CHUNK_BYTES,
    REPAIR,
    ArtifactStore,
    Pace,
    StoredFile,
    is_artifact_name,
    key_for,
    paced_digest,
    sha256_of,
)
from registry.errors import ArtifactCorrupted, ArtifactMissing, StoreFull, StoreUnavailable

INCOMING_PREFIX = ".incoming-"
# Errors that mean "no room", not "cannot write": more space fixes them, a retry alone does not.
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class LocalStore(ArtifactStore):
    """Artifacts under a directory, written to a temporary file, synced and renamed into place."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.location = str(self.root)

    def path_for(self, sha256: str) -> Path:
        """Where the artifact with this digest lives (the digest is checked, never trusted)."""
        return self.root / key_for(sha256)

    def put_file(self, source: BinaryIO, sha256: str, size: int) -> None:
        """Copy ``source`` into place through a temporary file, hashing it on the way."""
        final = self.path_for(sha256)
        try:
            if self.check(sha256) == "ok" and _touched(final):
                return
            final.parent.mkdir(parents=True, exist_ok=True)
            self._write(final, source, sha256)
        except OSError as exc:
            raise store_error(exc) from exc

    @staticmethod
    def _write(final: Path, source: BinaryIO, sha256: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=INCOMING_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                source.seek(0)
                digest = _copy_hashing(source, f)
                f.flush()
                os.fsync(f.fileno())
            if digest != sha256:
                raise ValueError(f"the bytes to store hash to {digest}, not {sha256}")
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)

    def get(self, sha256: str) -> bytes:
        """The stored bytes, after checking they still hash to ``sha256``."""
        try:
            data = self.path_for(sha256).read_bytes()
        except FileNotFoundError:
            raise ArtifactMissing(f"the stored artifact {sha256} is missing; {REPAIR}") from None
        except OSError as exc:
            raise _read_error(exc) from exc
        if sha256_of(data) != sha256:
            raise ArtifactCorrupted(f"the stored artifact {sha256} no longer matches its sha256; {REPAIR}")
        return data

    def exists(self, sha256: str) -> bool:
        """True when a file for this digest is in the store."""
        return self.path_for(sha256).is_file()

    def check(self, sha256: str, pace: Pace | None = None) -> str:
        """``ok``, ``damaged`` or ``missing``: the file re-hashed without holding it in memory."""
        try:
            with self.path_for(sha256).open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest() if pace is None else paced_digest(f, pace)
        except FileNotFoundError:
            return "missing"
        except OSError:  # unreadable (EIO, permissions): as good as damaged to whoever loads it
            return "damaged"
        return "ok" if digest == sha256 else "damaged"

    def stamp(self, sha256: str) -> tuple | None:
        """The file's inode, size and modification time (None when absent)."""
        try:
            stat = self.path_for(sha256).stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def files(self) -> Iterator[StoredFile]:
        """Every artifact and unfinished upload in the store, as found on disk now."""
        shelves = self.root / "sha256"
        if not shelves.is_dir():
            return
        for shelf in sorted(shelves.iterdir()):
            if not shelf.is_dir():
                continue
            for entry in os.scandir(shelf):
                found = self._stored_file(entry)
                if found is not None:
                    yield found

    def _stored_file(self, entry: os.DirEntry) -> StoredFile | None:
        if entry.name.startswith(INCOMING_PREFIX):
            sha256 = None
        elif is_artifact_name(entry.name):
            sha256 = entry.name
        else:
            return None  # not ours: never touched
        try:
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None
        return StoredFile(Path(entry.path).relative_to(self.root).as_posix(), sha256, stat.st_size, stat.st_mtime)

    def remove_if_older(self, found: StoredFile, cutoff: float) -> bool:
        """Delete ``found`` unless it was written or touched after ``cutoff`` (looked at again now)."""
        path = self._path_of(found)
        try:
            if path.stat().st_mtime > cutoff:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise store_error(exc, "nothing more was removed") from exc
        return True

    def _path_of(self, found: StoredFile) -> Path:
        """Where ``found`` was listed: its digest's place, or (misplaced, unfinished) the key it was found at."""
        if found.sha256 is not None and not found.misplaced:
            return self.path_for(found.sha256)
        top, shelf, name = found.key.split("/")
        ours = name.startswith(INCOMING_PREFIX) if found.sha256 is None else name == found.sha256
        if top != "sha256" or shelf in {"", ".", ".."} or not ours:
            raise ValueError(f"not a file of this store: {found.key}")
        return self.root / top / shelf / name

    def free_bytes(self) -> int | None:
        """Bytes an unprivileged writer may still use on the store's volume (None if unknown)."""
        try:
            stat = os.statvfs(self.root)
        except OSError:
            return None
        return stat.f_bavail * stat.f_frsize

    def problem(self) -> str | None:
        """None when the root exists and can be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                return None
        except OSError:
            return "the artifact store cannot be written"


def store_error(exc: OSError, outcome: str = "nothing was stored") -> StoreFull | StoreUnavailable:
    """The domain error for a failed write: full (507) or unavailable (503), with what to do."""
    reason = os.strerror(exc.errno) if exc.errno else "unknown error"
    if exc.errno in _FULL:
        return StoreFull(
            f"the artifact store is full ({reason}); {outcome}. An operator must free space "
            "(`flask --app wsgi artifacts gc` removes leftovers of crashed uploads) or grow the volume "
            "under ARTIFACT_ROOT; then upload again"
        )
    return StoreUnavailable(
        f"the artifact store cannot be written right now ({reason}); {outcome}. An operator must "
        "make ARTIFACT_ROOT writable again (check that it is mounted read-write, its permissions and the "
        "disk); then retry"
    )


def _read_error(exc: OSError) -> StoreUnavailable:
    reason = os.strerror(exc.errno) if exc.errno else "unknown error"
    return StoreUnavailable(
        f"the artifact store cannot be read right now ({reason}). An operator must check ARTIFACT_ROOT "
        "(that it is mounted, its permissions and the disk); then retry"
    )


def _copy_hashing(source: BinaryIO, target: BinaryIO) -> str:
    """Copy what is left of ``source`` into ``target``; the sha256 of what was copied."""
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK_BYTES):
        digest.update(chunk)
        target.write(chunk)
    return digest.hexdigest()


def _touched(path: Path) -> bool:
    """Mark an intact file as just used, so a concurrent ``artifacts gc`` leaves it alone."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False  # collected meanwhile: write it again
    except OSError:
        pass  # a read-only store cannot be collected either
    return True


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
