"""Load uploaded model files (joblib, pickle or skops) without running code or exhausting memory.

Both formats admit only one allow-list of types (``registry.artifacts.loading.allowed``), are read within the
same bounds (``MAX_MODEL_MB`` and an object limit, ``registry.artifacts.loading.limits``) and pass the same
checks on what they built (``registry.artifacts.loading.checks``, ``registry.artifacts.loading.widths``).
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from registry.artifacts.loading.limits import DEFAULT_MAX_MODEL_BYTES, Budget
from registry.errors import InvalidArtifact, RegistryError

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

ZIP_MAGIC = b"PK\x03\x04"  # a skops file is a zip file
JOBLIB_0_9_MAGIC = b"ZF"  # the compressed files of joblib before 0.10, which joblib.load still reads
LZ4_MAGIC = b"\x04\x22\x4d\x18"  # an lz4 frame: joblib.dump(..., compress="lz4"), read only where lz4 is installed


@dataclass(frozen=True)
class LoadedArtifact:
    """An estimator loaded from an upload, its file format and the scikit-learn version it names."""

    estimator: BaseEstimator
    sklearn_version: str | None
    format: str = "joblib"


def artifact_format(data: bytes) -> str:
    """``skops`` for a zip file (a skops file), ``joblib`` for everything else (joblib or pickle)."""
    return "skops" if data.startswith(ZIP_MAGIC) else "joblib"


def load_estimator(
    source: bytes | BinaryIO, *, max_bytes: int = DEFAULT_MAX_MODEL_BYTES, max_features: int | None = None
) -> LoadedArtifact:
    """Load an uploaded joblib, pickle or skops file (its bytes, or a binary file read from its start),
    admitting only allow-listed types.

    Refuses with ArtifactTooLarge (while reading) a file that unpacks to more than ``max_bytes``
    or builds more objects than any supported model, a model that takes more than ``max_features``
    features (None: no bound), and (before checking its trees) a tree model that would grow past
    ``max_bytes`` once compiled; with InvalidArtifact a model whose widths disagree with its arrays.
    """
    head = _head(source)
    if not head:
        raise InvalidArtifact(
            "artifact is empty: upload the file written by joblib.dump(model, path)"
        )
    if head.startswith(JOBLIB_0_9_MAGIC):
        raise InvalidArtifact("artifact was written by joblib older than 0.10: dump it again")
    if head.startswith(LZ4_MAGIC):
        raise InvalidArtifact("artifact is compressed with lz4, which this server does not read: dump it with "
                              "joblib.dump(model, path, compress=3), or compress=('gzip', 3), 'bz2', 'lzma' or 'xz'")
    # The readers and checks import scikit-learn: here, so that a process that only serves forms never does.
    from registry.artifacts.loading.checks import check_expanded_size, check_parameters, check_top_level, check_trees
    from registry.artifacts.loading.pickles import unpickle
    from registry.artifacts.loading.skops_files import load_skops
    from registry.artifacts.loading.widths import check_widths

    fmt = artifact_format(head)
    budget = Budget(max_bytes)
    try:
        with _collector_paused():
            estimator, version = (load_skops if fmt == "skops" else unpickle)(source, budget)
        check_top_level(estimator)
        check_parameters(estimator)
        check_widths(estimator, max_features)
        check_expanded_size(estimator, max_bytes)
        check_trees(estimator)
    except RegistryError:
        raise
    except Exception as exc:  # anything a malformed file makes the readers raise
        raise InvalidArtifact(_not_a_model_file(exc, fmt)) from exc
    return LoadedArtifact(estimator, version, fmt)


def _head(source: bytes | BinaryIO) -> bytes:
    """The first bytes, enough to tell the formats apart; a file is left at its start."""
    if isinstance(source, bytes):
        return source[:8]
    source.seek(0)
    head = source.read(8)
    source.seek(0)
    return head


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading builds up to a million objects in a row; the cycle collector would rescan the whole
    heap many times meanwhile (two thirds of the time to refuse a million empty lists)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _not_a_model_file(exc: Exception, fmt: str) -> str:
    if isinstance(exc, EOFError):
        reason = "it ends too early (a truncated upload?)"
    elif isinstance(exc, MemoryError):
        reason = "it announces more data than the server can hold"
    else:
        reason = str(exc)[:200] or type(exc).__name__
    if fmt == "skops":
        return (
            f"artifact is not a skops file of a scikit-learn model: {reason}; "
            "upload the file written by skops.io.dump(model, path)"
        )
    return (
        f"artifact is not a joblib or pickle file of a scikit-learn model: {reason}; "
        "upload the file written by joblib.dump(model, path) or pickle.dump(model, file)"
    )
