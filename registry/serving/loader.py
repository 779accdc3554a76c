"""From a stored artifact to a servable model: read it, load it safely, and prepare what predict calls."""
from typing import Protocol

from registry.artifacts.introspect import takes_named_columns
from registry.artifacts.safe_pickle import load_estimator
from registry.artifacts.signature import Signature
from registry.artifacts.store import ArtifactStore
from registry.errors import ArtifactCorrupted, ArtifactMissing, NotFetchedYet, StoreUnavailable
from registry.facts import VersionInfo
from registry.serving.cache import ServableModel
from registry.serving.model_size import held_bytes
from registry.serving.predictors import predictor_for
from registry.telemetry import ARTIFACT_STORE_ERRORS


class Loader(Protocol):
    """What the model server loads versions with (a fake in unit tests)."""

    def __call__(self, info: VersionInfo) -> ServableModel:
        """The version loaded, ready to predict; raises what went wrong."""

    def stamp(self, sha256: str) -> object:
        """What changes when the stored artifact changes (a failed load is retried once it has)."""


class ArtifactLoader:
    """Loads versions from the artifact store through the restricted unpickler, within a size bound."""

    def __init__(self, store: ArtifactStore, max_model_bytes: int):
        self.store = store
        self.max_model_bytes = max_model_bytes

    def __call__(self, info: VersionInfo) -> ServableModel:
        """Read, check and load the version's artifact, and compile what predict will call."""
        estimator = load_estimator(self._read(info.sha256), max_bytes=self.max_model_bytes).estimator
        predictor = predictor_for(estimator)
        return ServableModel(
            info.model,
            info.number,
            info.sha256,
            info.task,
            Signature.from_dict(info.signature),
            estimator,
            takes_frame=takes_named_columns(estimator),
            predictor=predictor,
            size_bytes=held_bytes(estimator, predictor),
        )

    def _read(self, sha256: str) -> bytes:
        """The artifact's bytes; a failure is counted by kind in ``registry_artifact_store_errors_total``."""
        try:
            return self.store.get(sha256)
        except NotFetchedYet:
            raise
        except (ArtifactCorrupted, StoreUnavailable) as exc:
            ARTIFACT_STORE_ERRORS.labels(_kind(exc)).inc()
            raise

    def stamp(self, sha256: str) -> object:
        """The stored file's identity and modification stamp."""
        return self.store.stamp(sha256)


def _kind(error: Exception) -> str:
    if isinstance(error, ArtifactMissing):
        return "missing"
    return "damaged" if isinstance(error, ArtifactCorrupted) else "unavailable"
