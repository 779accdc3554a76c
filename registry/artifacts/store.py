"""Content-addressed artifact storage: files are named by their sha256, never by user input."""
import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from registry.errors import ArtifactCorrupted, StoreFull, StoreUnavailable

_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPAIR = "it is not served: re-upload the original file to repair it, or restore the store from a backup"
INCOMING_PREFIX = ".incoming-"
# Errors that mean "no room", not "cannot write": more space fixes them, a retry alone does not.
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass(frozen=True)
class StoredFile:
    """A file found in the store: an artifact (named by its sha256) or an unfinished upload."""

    path: Path
    sha256: str | None  # None for an unfinished upload (a temp file that was never renamed)
    size: int
    modified: float  # seconds since the epoch


def sha256_of(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Artifacts under ``root/sha256/<aa>/<sha256>``, written atomically and verified on read."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        """Where the artifact with this digest lives (the digest is checked, never trusted)."""
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256; a crash leaves the old state or the whole file.

        A file already in place is kept only if it is intact, so uploading the original bytes
        again repairs a damaged store.
        """
        digest = sha256_of(data)
        final = self.path_for(digest)
        try:
            if self.check(digest) == "ok" and _touched(final):
                return digest
            final.parent.mkdir(parents=True, exist_ok=True)
            self._write(final, data)
        except OSError as exc:
            raise store_error(exc) from exc
        return digest

    @staticmethod
    def _write(final: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=INCOMING_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
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
            raise ArtifactCorrupted(f"the stored artifact {sha256} is missing; {_REPAIR}") from None
        except OSError as exc:
            raise _read_error(exc) from exc
        if sha256_of(data) != sha256:
            raise ArtifactCorrupted(f"the stored artifact {sha256} no longer matches its sha256; {_REPAIR}")
        return data

    def exists(self, sha256: str) -> bool:
        """True when a file for this digest is in the store."""
        return self.path_for(sha256).is_file()

    def check(self, sha256: str) -> str:
        """``ok``, ``damaged`` or ``missing``: the file re-hashed without holding it in memory."""
        try:
            with self.path_for(sha256).open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except FileNotFoundError:
            return "missing"
        except OSError:  # unreadable (EIO, permissions): as good as damaged to whoever loads it
            return "damaged"
        return "ok" if digest == sha256 else "damaged"

    def stamp(self, sha256: str) -> tuple | None:
        """What changes when the file is replaced or rewritten (None when absent); cheap, no read."""
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
                found = _stored_file(entry)
                if found is not None:
                    yield found

    def remove_if_older(self, found: StoredFile, cutoff: float) -> bool:
        """Delete ``found`` unless it was written or touched after ``cutoff`` (looked at again now)."""
        try:
            if found.path.stat().st_mtime > cutoff:
                return False
            found.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise store_error(exc, "nothing more was removed") from exc
        return True

    def free_bytes(self) -> int | None:
        """Bytes an unprivileged writer may still use on the store's volume (None if unknown)."""
        try:
            stat = os.statvfs(self.root)
        except OSError:
            return None
        return stat.f_bavail * stat.f_frsize

    def is_reachable(self) -> bool:
        """True when the root exists and can be written (readiness check)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                return True
        except OSError:
            return False


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


def _touched(path: Path) -> bool:
    """Mark an intact file as just used, so a concurrent ``artifacts gc`` leaves it alone."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False  # collected meanwhile: write it again
    except OSError:
        pass  # a read-only store cannot be collected either
    return True


def _stored_file(entry: os.DirEntry) -> StoredFile | None:
    if entry.name.startswith(INCOMING_PREFIX):
        sha256 = None
    elif _SHA256.fullmatch(entry.name):
        sha256 = entry.name
    else:
        return None  # not ours: never touched
    try:
        stat = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
    return StoredFile(Path(entry.path), sha256, stat.st_size, stat.st_mtime)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
