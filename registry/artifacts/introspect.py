"""What a fitted estimator is: its kind, task, class paths and signature."""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from registry.artifacts.signature import Feature, ModelDescription, Signature
from registry.artifacts.supported_estimators import (
    ENCODERS,
    HISTOGRAM_BOOSTING,
    MODELS,
    PREPROCESSORS,
    accepted_models,
    accepted_steps,
    class_path,
)
from registry.errors import InvalidArtifact

PASSTHROUGH = "passthrough"


def describe(
    estimator: BaseEstimator,
    feature_names: list[str] | None = None,
    sklearn_version: str | None = None,
) -> ModelDescription:
    """Describe a fitted, supported estimator or Pipeline; refuse anything else."""
    steps = [step for _, step in estimator.steps] if isinstance(estimator, Pipeline) else None
    model = steps[-1] if steps else estimator
    kind, task = _kind_and_task(model)
    if steps:
        _check_steps(steps[:-1])
    _check_fitted(steps or [estimator])
    _check_servable(estimator)
    names = _feature_names(estimator, feature_names)
    object_columns = _object_columns(estimator)
    features = tuple(
        Feature(name, "object" if i in object_columns else "float64")
        for i, name in enumerate(names)
    )
    return ModelDescription(
        kind=kind,
        task=task,
        estimator=class_path(type(model)),
        steps=[_step_path(step) for step in steps] if steps else None,
        # A bare histogram booster sends NaN where it learned missing values go; a step before it may not pass one on.
        signature=Signature(features, _classes(model) if task == "classification" else None,
                            missing=steps is None and type(model) in HISTOGRAM_BOOSTING),
        sklearn_version=sklearn_version,
    )


def _kind_and_task(model) -> tuple[str, str]:
    if type(model) not in MODELS:
        raise InvalidArtifact(
            f"{_step_path(model)} is not a supported model; accepted are {accepted_models()}, "
            "alone or as the last step of a Pipeline"
        )
    return MODELS[type(model)]


def _check_steps(steps: list) -> None:
    for step in steps:
        if step != PASSTHROUGH and type(step) not in PREPROCESSORS:
            raise InvalidArtifact(
                f"Pipeline step {_step_path(step)} is not supported; the steps before the model "
                f"may be {accepted_steps()}"
            )


def _check_servable(estimator: BaseEstimator) -> None:
    """What the workers call predict on can be made from the estimator: a file can leave out a fitted attribute
    that the compiled form reads (a linear model's ``intercept_``), which ``check_is_fitted`` does not see."""
    from registry.inference.predictors import predictor_for

    try:
        predictor_for(estimator)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError) as error:
        raise InvalidArtifact(f"the model cannot be served as it is: {str(error)[:200] or type(error).__name__}; "
                              "upload the file written by joblib.dump(model, path)") from None


def _check_fitted(steps: list) -> None:
    for step in steps:
        if step == PASSTHROUGH:
            continue
        try:
            check_is_fitted(step)
        except NotFittedError:
            raise InvalidArtifact(
                f"{_step_path(step)} is not fitted; fit it before uploading"
            ) from None


def _step_path(step) -> str:
    return step if isinstance(step, str) else class_path(type(step))


def _feature_names(estimator: BaseEstimator, given: list[str] | None) -> list[str]:
    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, numbers.Integral):
        raise InvalidArtifact(
            "the model does not record how many features it takes (n_features_in_); "
            "fit it on a 2-D array or a DataFrame"
        )
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None:
        names = [str(name) for name in fitted]
        if given is not None and list(given) != names:
            raise InvalidArtifact(
                f"feature_names {list(given)} differ from the names the model was fitted with "
                f"{names}: leave feature_names out"
            )
        return names
    if given is not None:
        return _checked_names(given, int(n_features))
    return [f"x{i}" for i in range(n_features)]


def _checked_names(given, n_features: int) -> list[str]:
    names = list(given)
    if len(names) != n_features:
        raise InvalidArtifact(
            f"feature_names has {len(names)} names but the model takes {n_features} features"
        )
    if not all(isinstance(name, str) and name for name in names):
        raise InvalidArtifact("feature_names must all be non-empty strings")
    if len(set(names)) != len(names):
        raise InvalidArtifact("feature_names must be unique")
    return names


def _object_columns(step) -> set[int]:
    """Input columns that take categories given as strings rather than numbers."""
    return {i for i, categories in encoded_columns(step).items() if not _numeric(categories)}


def encoded_columns(step) -> dict[int, np.ndarray]:
    """The fitted categories of every input column that an encoder inside ``step`` reads, by index."""
    if isinstance(step, ENCODERS):
        return dict(enumerate(step.categories_))
    if isinstance(step, ColumnTransformer):
        found = {}
        for name, inner, _ in step.transformers_:
            # The fitted routing of input columns, as ColumnTransformer itself reads it.
            indices = step._transformer_to_input_indices[name]
            found |= {indices[i]: categories for i, categories in encoded_columns(inner).items()}
        return found
    if isinstance(step, HISTOGRAM_BOOSTING) and getattr(step, "_preprocessor", None) is not None:
        return encoded_columns(step._preprocessor)  # its categorical columns, encoded by its own OrdinalEncoder
    if isinstance(step, Pipeline):
        # An imputer keeps its columns in place, so the first other step decides.
        kept = (s for _, s in step.steps if s != PASSTHROUGH and not isinstance(s, SimpleImputer))
        return encoded_columns(next(kept, None))
    return {}


def _numeric(categories: np.ndarray) -> bool:
    return categories.dtype.kind in "biuf" or all(
        isinstance(category, numbers.Real) for category in categories
    )


def _classes(model) -> tuple:
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise InvalidArtifact(f"{_step_path(model)} is a classifier without the classes_ it was fitted with; "
                              "upload the file written by joblib.dump(model, path)")
    if not isinstance(classes, np.ndarray) or classes.ndim != 1:
        raise InvalidArtifact("multi-output classifiers are not supported; fit one target")
    return tuple(classes.tolist())


def takes_named_columns(estimator) -> bool:
    """True when a ColumnTransformer inside was fitted on a DataFrame, so rows must come as one.

    Such a transformer may pick its columns by name, which a plain array cannot answer.
    """
    if not isinstance(estimator, Pipeline):
        return False
    return any(
        (isinstance(step, ColumnTransformer) and hasattr(step, "feature_names_in_")) or takes_named_columns(step)
        for _, step in estimator.steps
    )
