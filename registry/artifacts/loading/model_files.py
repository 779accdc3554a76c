"""Model files of other libraries that the registry reads itself, never running their code: XGBoost's
JSON or UBJSON (``xgboost_files``) and LightGBM's text (``lightgbm_files``), told apart by their first bytes.
Each reader gives the same compiled form (``CompiledBoosting``) and the file's feature names."""
from __future__ import annotations

from registry.artifacts.loading import lightgbm_files, xgboost_files
from registry.artifacts.signature import ModelDescription
from registry.inference.fast_boosting import CompiledBoosting


def framework_of(head: bytes) -> str | None:
    """``xgboost`` or ``lightgbm`` when a file's first bytes are one of their model files; None for anything else
    (a pickle, joblib or skops file)."""
    if xgboost_files.is_xgboost(head):
        return "xgboost"
    return "lightgbm" if lightgbm_files.is_lightgbm(head) else None


def read_model_file(framework: str, data: bytes, classes: list | None) -> tuple[CompiledBoosting, list[str] | None]:
    """The compiled form of a model file of ``framework`` and the feature names it holds; ``classes`` name a
    classifier's classes (``0 … k-1`` when None). Raises ``InvalidArtifact`` naming what is wrong."""
    read = xgboost_files.read_xgboost if framework == "xgboost" else lightgbm_files.read_lightgbm
    return read(data, classes)


def describe_model_file(framework: str, form: CompiledBoosting, *, names: list[str] | None,
                        given: list[str] | None) -> ModelDescription:
    """What a model file of ``framework`` is (kind, estimator, signature), ``given`` being the upload's
    ``feature_names``."""
    describe = xgboost_files.describe_xgboost if framework == "xgboost" else lightgbm_files.describe_lightgbm
    return describe(form, names, given)
