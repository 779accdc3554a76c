"""Content-addressed artifact storage: files are named by their sha256, never by user input."""
import hashlib
import os
import re
import tempfile
from pathlib import Path

from registry.errors import ArtifactCorrupted

_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPAIR = "it is not served: re-upload the original file to repair it, or restore the store from a backup"


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
        if self._intact(final, digest):
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
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
        return digest

    def get(self, sha256: str) -> bytes:
        """The stored bytes, after checking they still hash to ``sha256``."""
        try:
            data = self.path_for(sha256).read_bytes()
        except FileNotFoundError:
            raise ArtifactCorrupted(f"the stored artifact {sha256} is missing; {_REPAIR}") from None
        if sha256_of(data) != sha256:
            raise ArtifactCorrupted(f"the stored artifact {sha256} no longer matches its sha256; {_REPAIR}")
        return data

    @staticmethod
    def _intact(path: Path, sha256: str) -> bool:
        try:
            with path.open("rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest() == sha256
        except FileNotFoundError:
            return False

    def exists(self, sha256: str) -> bool:
        """True when a file for this digest is in the store."""
        return self.path_for(sha256).is_file()

    def is_reachable(self) -> bool:
        """True when the root exists and can be written (readiness check)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                return True
        except OSError:
            return False


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
