"""Model files of other libraries that the registry reads itself, never running their code: XGBoost's
JSON or UBJSON (``xgboost_files``) and LightGBM's text (``lightgbm_files``), told apart by their first bytes.
Each reader gives the same compiled form (``CompiledBoosting``) and the file's feature names."""
from __future__ import annotations

from registry.artifacts.loading import lightgbm_files, xgboost_files
from registry.artifacts.signature import Feature, ModelDescription, Signature
from registry.errors import InvalidArtifact
from registry.inference.fast_boosting import CompiledBoosting


def framework_of(head: bytes) -> str | None:
    """``xgboost`` or ``lightgbm`` when a file's first bytes are one of their model files; None for anything else
    (a pickle, joblib or skops file)."""
    if xgboost_files.is_xgboost(head):
        return "xgboost"
    return "lightgbm" if lightgbm_files.is_lightgbm(head) else None


def read_model_file(framework: str, data: bytes, classes: list | None, *, max_features: int | None = None,
                    ) -> tuple[CompiledBoosting, list[str] | None]:
    """The compiled form of a model file of ``framework`` and the feature names it holds; ``classes`` name a
    classifier's classes (``0 … k-1`` when None); an upload's ``max_features`` (``MAX_FEATURES``) bounds what an
    XGBoost file may hold before its width is known. Raises ``InvalidArtifact`` naming what is wrong."""
    if framework == "xgboost":
        return xgboost_files.read_xgboost(data, classes, max_features)
    return lightgbm_files.read_lightgbm(data, classes)


# The names a file's columns go by when neither the file nor the upload names them: each library's own.
_DEFAULT_NAMES = {"xgboost": "x{}", "lightgbm": "Column_{}"}


def describe_model_file(framework: str, form: CompiledBoosting, *, names: list[str] | None,
                        given: list[str] | None) -> ModelDescription:
    """What a model file of ``framework`` is: kind ``boosting``, ``xgboost.Booster`` or ``lightgbm.Booster``, its
    signature (the file's feature names, else ``given``, the upload's ``feature_names``, else the library's
    defaults; a LightGBM file holding its defaults ``Column_0 …`` names none), and its classes."""
    if given is not None and names is not None and list(given) != names:
        raise InvalidArtifact(f"feature_names {list(given)} differ from the names the file holds {names}: "
                              "leave feature_names out")
    names = names or list(given or [_DEFAULT_NAMES[framework].format(i) for i in range(form.n_features)])
    if len(names) != form.n_features or len(set(names)) != len(names):
        raise InvalidArtifact(f"feature_names must be {form.n_features} unique names")
    classes = None if form.classes is None else tuple(form.classes.tolist())
    return ModelDescription(kind="boosting", task="regression" if classes is None else "classification",
                            estimator=f"{framework}.Booster", steps=None,
                            signature=Signature(tuple(Feature(name, "float64") for name in names), classes,
                                                missing=True),  # both libraries define where NaN goes
                            sklearn_version=None, framework=framework)
