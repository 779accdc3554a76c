"""Explanations beside predictions: per row, a ``base_value`` and one attribution per input column, in the
model's output space, adding up to the answer in that space.

- trees and random forests (``registry.inference.tree_shap``, path-dependent TreeSHAP): ``"probability"``
  for classifiers (one value per class, in ``classes`` order), ``"prediction"`` for regressors;
- boosted models (the same TreeSHAP over their raw output): ``"margin"`` for classifiers (log-odds: one
  value for two classes, of the second; one per class for more; a LightGBM model's raw score, which is the
  log-odds divided by its ``sigmoid`` parameter, 1 by default) and for a regressor whose link is not the
  identity (Poisson, gamma, tweedie: the log of the prediction; LightGBM's ``cross_entropy``: its log-odds;
  ``reg_sqrt``: the signed square root of the prediction), ``"prediction"`` otherwise;
- linear and logistic models (``registry.inference.linear_shap``): against the all-zeros row of the
  model's own features, which is the training mean where a StandardScaler standardized them:
  ``"prediction"``, or ``"margin"`` for a logistic regression.

Behind a Pipeline's steps the attributions are the model's, on the features the steps made; each comes
from one input column when every step maps columns so (scalers and ordinal encoders one to one, an
imputer's columns and missing-value indicators to theirs, a one-hot encoder's to its source column, a
ColumnTransformer's parts, passthrough), and each column's value is the sum of its
features'. Where a step mixes columns (a polynomial, a projection, an unknown step) there is no exact
mapping: the values are then given per transformed feature, and the answer says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from registry.errors import ArtifactCorrupted, InvalidInput, NotExplainable
from registry.inference.fast_boosting import CompiledBoosting
from registry.inference.linear_shap import linear_shap
from registry.inference.tree_shap import NotExplainable as RecordsNotExplainable
from registry.inference.tree_walk import NodesDamaged
from registry.serving.cache import ServableModel
from registry.inference.predictors import LinearPredictor, TreePredictor, dense

# Steps whose every output column is the input column at the same place.
_ONE_TO_ONE = {"StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "OrdinalEncoder"}


@dataclass(frozen=True)
class Explanations:
    """The rows' explanations, the space they are in, and whether their keys are input columns."""

    space: str
    rows: list[dict]
    by_input_column: bool = True
    note: str | None = None

    def to_dict(self) -> dict:
        """The fields the predict routes add to their answer."""
        body = {"explanations": self.rows, "explanation_space": self.space}
        if not self.by_input_column:
            body["explanation_columns"] = "transformed"
            body["explanation_note"] = self.note
        return body


def explain(servable: ServableModel, rows) -> Explanations:
    """The explanations of ``rows`` (as the predictor takes them) by ``servable``; ``NotExplainable`` says
    why there are none."""
    predictor = servable.predictor
    where = f"version {servable.version} of {servable.model!r}"
    if not isinstance(predictor, (TreePredictor, LinearPredictor)):
        raise NotExplainable(f"{where} is served by its library ({servable.kind or 'this kind'} with these steps), "
                             "not by a compiled form: explanations exist for trees, forests, boosted trees and "
                             "linear and logistic models")
    try:
        transformed = dense(predictor.transformed(rows))
        if isinstance(predictor, TreePredictor):
            space = _tree_space(predictor.compiled)
            base, values = predictor.compiled.explain(transformed)
        else:
            space = "margin" if predictor.classes is not None else "prediction"
            features = np.asarray(transformed, dtype=np.float64)
            base, values = linear_shap(predictor.coef, predictor.intercept, rows=features,
                                       reference=np.zeros(features.shape[1]))
    except RecordsNotExplainable as error:
        raise NotExplainable(f"{where} cannot be explained: {error}") from None
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"{where} could not explain these rows: {error}") from None
    except NodesDamaged as error:
        raise ArtifactCorrupted(f"{where} cannot explain in this worker: {error}; retry after its next alias "
                                "refresh (ALIAS_REFRESH_SECONDS)") from None
    sources = feature_sources(predictor.transforms, len(servable.signature.names))
    if sources is None:
        names = _transformed_names(predictor.transforms, values.shape[1])
        note = (f"a step of {where}'s Pipeline mixes input columns: the values are per transformed feature, "
                "as the model saw them")
        return Explanations(space, _render(base, values, names), by_input_column=False, note=note)
    summed = np.zeros((values.shape[0], len(servable.signature.names), values.shape[2]))
    np.add.at(summed, (slice(None), np.asarray(sources, dtype=np.intp)), values)
    return Explanations(space, _render(base, summed, list(servable.signature.names)))


def _tree_space(compiled) -> str:
    if not isinstance(compiled, CompiledBoosting):
        return "prediction" if compiled.classes is None else "probability"
    if compiled.classes is not None or compiled.link not in ("identity", "xgboost_identity", "lightgbm_identity"):
        return "margin"
    return "prediction"


def _render(base: np.ndarray, values: np.ndarray, names: list) -> list[dict]:
    """One ``{"base_value", "values"}`` per row: numbers for one output, lists (one per class) for more."""
    if values.shape[2] == 1:
        base_value, by_row = float(base[0]), values[:, :, 0].tolist()
        return [{"base_value": base_value, "values": dict(zip(names, row))} for row in by_row]
    base_value, by_row = base.tolist(), values.tolist()
    return [{"base_value": base_value, "values": dict(zip(names, row))} for row in by_row]


def feature_sources(transforms: list, n_inputs: int) -> list[int] | None:
    """For each feature the steps make, the input column it comes from alone; None when a step mixes columns."""
    sources = list(range(n_inputs))
    for step in transforms:
        made = _step_sources(step, len(sources))
        if made is None:
            return None
        sources = [sources[i] for i in made]
    return sources


def _step_sources(step, n_in: int) -> list[int] | None:
    kind = type(step).__name__
    if kind in _ONE_TO_ONE and _width_out(step) == n_in:
        return list(range(n_in))
    if kind == "SimpleImputer":  # the columns it keeps (an all-missing one is dropped), then their indicators
        statistics = np.asarray(step.statistics_)
        kept = [i for i in range(n_in) if step.keep_empty_features or statistics.dtype.kind != "f"
                or not np.isnan(statistics[i])]
        indicated = list(step.indicator_.features_) if step.add_indicator else []
        return [*kept, *indicated]
    if kind == "FunctionTransformer" and step.func is None:  # the identity (a ColumnTransformer's passthrough)
        return list(range(n_in))
    if kind == "OneHotEncoder":
        widths = getattr(step, "_n_features_outs", None)
        if widths is None or len(widths) != n_in:
            return None
        return [column for column, width in enumerate(widths) for _ in range(width)]
    if kind == "Pipeline":
        return feature_sources([s for _, s in step.steps if not (s is None or isinstance(s, str))], n_in)
    if kind == "ColumnTransformer":
        return _column_transformer_sources(step, n_in)
    return None


def _column_transformer_sources(step, n_in: int) -> list[int] | None:
    width = sum(s.stop - s.start for s in step.output_indices_.values())
    sources: list[int | None] = [None] * width
    for name, transformer, _ in step.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        columns = list(step._transformer_to_input_indices.get(name, ()))
        made = list(range(len(columns))) if isinstance(transformer, str) else _step_sources(transformer, len(columns))
        place = step.output_indices_[name]
        if made is None or len(made) != place.stop - place.start:
            return None
        sources[place] = [columns[i] for i in made]
    if any(source is None or not 0 <= source < n_in for source in sources):
        return None
    return sources


def _width_out(step) -> int | None:
    try:
        return len(step.get_feature_names_out())
    except (AttributeError, ValueError, TypeError):  # a step that cannot name its outputs: no mapping to trust
        return None


def _transformed_names(transforms: list, width: int) -> list[str]:
    try:
        names = [str(name) for name in transforms[-1].get_feature_names_out()]
    except (AttributeError, ValueError, TypeError, IndexError):  # no names: numbered
        names = []
    return names if len(names) == width else [f"feature_{i}" for i in range(width)]
