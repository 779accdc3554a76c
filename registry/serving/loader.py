"""From a stored artifact to a servable model: read it, load it safely, and prepare what predict calls."""
from typing import Protocol

import numpy as np

from registry.artifacts.signature import Signature
from registry.artifacts.store import ArtifactStore
from registry.errors import ArtifactCorrupted, ArtifactMissing, NotFetchedYet, StoreUnavailable
from registry.facts import VersionInfo
from registry.heap import give_back
from registry.serving.cache import ServableModel
from registry.serving.model_size import held_bytes
from registry.inference.predictors import TreePredictor, predictor_for
from registry.artifacts.served_forms import ServedForms
from registry.telemetry import ARTIFACT_STORE_ERRORS


class Loader(Protocol):
    """What the model server loads versions with (a fake in unit tests)."""

    def __call__(self, info: VersionInfo) -> ServableModel:
        """The version loaded, ready to predict; raises what went wrong."""

    def stamp(self, sha256: str) -> object:
        """What changes when the stored artifact changes (a failed load is retried once it has)."""

    def changed(self, servable: ServableModel) -> bool:
        """Whether a file the loaded model maps was written since it was checked (it must be loaded again)."""


class ArtifactLoader:
    """Loads versions from the artifact store through the restricted unpickler, within a size bound.

    With ``forms``, what predict calls is made once per machine and mapped by every worker
    (``registry.artifacts.served_forms``): the artifact is unpickled only by the first worker to load it.
    """

    def __init__(self, store: ArtifactStore, max_model_bytes: int, forms: ServedForms | None = None):
        self.store = store
        self.max_model_bytes = max_model_bytes
        self.forms = forms

    def __call__(self, info: VersionInfo) -> ServableModel:
        """The version ready to predict: from its served form if there is one, else from its artifact."""
        if self.forms is None:
            return _servable(info, self._prepared(info), mapped_bytes=0)
        prepared: dict = {}

        def prepare() -> dict:
            prepared.update(self._prepared(info))
            return prepared

        form = self.forms.make(info.sha256, prepare)
        if form is not None:
            if prepared:  # this process made the form: what it unpickled to make it is garbage now
                prepared.clear()
                give_back()
            return _servable(info, form.values, form.mapped_bytes, form.mapped_from)
        return _servable(info, prepared or self._prepared(info), mapped_bytes=0)

    def _prepared(self, info: VersionInfo) -> dict:
        """Read, check and load the artifact, and make what predict will call."""
        return prepare(self._read(info.sha256), info.signature, self.max_model_bytes)

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

    def changed(self, servable: ServableModel) -> bool:
        """Whether a served form's file the model maps was written in place since it was checked."""
        return any(mapped.written() for mapped in servable.mapped_from)


def prepare(data: bytes, signature: dict | None, max_model_bytes: int) -> dict:
    """What predict will call for an artifact's bytes, loaded by the restricted loader (the estimator is let go).
    An XGBoost or LightGBM file's classes are those its version's signature names (given at upload, or
    0 … k-1): the same file may be several versions naming other classes, so they are named again whenever
    a version is served (``classes_from_signature``), also from a form another version made."""
    # Here, not at the top: unpickling needs scikit-learn, serving a version from its form does not.
    from registry.artifacts.loading import model_files, xgboost_files

    framework = model_files.framework_of(data[:64])
    if framework is not None:  # read by the registry itself: no scikit-learn, no XGBoost, no LightGBM
        classes = (signature or {}).get("classes")
        form, _ = model_files.read_model_file(framework, xgboost_files.read_upload(data, max_model_bytes), classes)
        return {"predictor": TreePredictor([], form), "takes_frame": False, "known_categories": {},
                "classes_from_signature": True}
    from registry.artifacts.introspect import encoded_columns, takes_named_columns
    from registry.artifacts.safe_pickle import load_estimator

    estimator = load_estimator(data, max_bytes=max_model_bytes).estimator
    known = {i: categories[:1].tolist()[0] for i, categories in encoded_columns(estimator).items() if len(categories)}
    return {
        "predictor": predictor_for(estimator),
        "takes_frame": takes_named_columns(estimator),
        "known_categories": known,
    }


def servable(info: VersionInfo, prepared: dict) -> ServableModel:
    """A version ready to predict from what :func:`prepare` made, held in this process's memory."""
    return _servable(info, prepared, mapped_bytes=0)


def _servable(info: VersionInfo, prepared: dict, mapped_bytes: int, mapped_from: tuple = ()) -> ServableModel:
    predictor = prepared["predictor"]
    signature = Signature.from_dict(info.signature)
    if prepared.get("classes_from_signature") and signature.classes is not None:
        predictor = TreePredictor([], predictor.compiled.with_classes(np.asarray(list(signature.classes))))
    return ServableModel(
        info.model,
        info.number,
        info.sha256,
        info.task,
        signature,
        predictor,
        takes_frame=prepared["takes_frame"],
        known_categories=prepared["known_categories"],
        size_bytes=held_bytes(predictor) + mapped_bytes,
        mapped_from=mapped_from,
        kind=info.kind,
        framework=info.framework,
    )


def _kind(error: Exception) -> str:
    if isinstance(error, ArtifactMissing):
        return "missing"
    return "damaged" if isinstance(error, ArtifactCorrupted) else "unavailable"
