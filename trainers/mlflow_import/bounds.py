"""What the import reads, bounded: each file at most the registry's upload limit, read as it streams,
and every artifact path a relative path that stays inside the folder it names."""
from __future__ import annotations

from collections.abc import Iterable

from trainers.errors import TrainerError
from trainers.mlflow_import.records import Unimportable

DEFAULT_MAX_UPLOAD_MB = 512  # the registry's own default MAX_UPLOAD_MB
MB = 1024 * 1024


class OverLimit(TrainerError):
    """A file of the MLflow source is larger than the registry would take; the import stops there."""


def over_limit(what: str, limit: int) -> OverLimit:
    """The one-line error for ``what`` being larger than ``limit`` bytes."""
    return OverLimit(f"{what} is over the limit of {limit // MB} MB (MAX_UPLOAD_MB), which the registry would "
                     "refuse; set --max-upload-mb (or MAX_UPLOAD_MB) to the registry's own MAX_UPLOAD_MB if it is larger")


def read_capped(chunks: Iterable[bytes], limit: int, what: str) -> bytes:
    """The bytes of ``chunks`` joined, stopping with OverLimit as soon as they pass ``limit``."""
    parts, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise over_limit(what, limit)
        parts.append(chunk)
    return b"".join(parts)


def relative_path(path: str, what: str) -> str:
    """``path`` as a relative, ``/``-separated path with no empty, ``.`` or ``..`` part, no backslash and
    no control character; Unimportable otherwise (an absolute path or a climb would leave the folder)."""
    parts = path.split("/") if isinstance(path, str) else []
    if (not parts or any(part in ("", ".", "..") for part in parts) or "\\" in path
            or any(ord(char) < 32 or ord(char) == 127 for char in path)):
        raise Unimportable(f"its {what} {path!r} is not a path inside its model folder")
    return path
