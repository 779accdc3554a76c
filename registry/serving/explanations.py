"""Explanations beside predictions: per row, a ``base_value`` and one attribution per input column, in the
model's output space, adding up to the answer in that space.

- trees and random forests (``registry.inference.tree_shap``, path-dependent TreeSHAP): ``"probability"``
  for classifiers (one value per class, in ``classes`` order), ``"prediction"`` for regressors;
- boosted models (the same TreeSHAP over their raw output): ``"margin"`` for classifiers (log-odds: one
  value for two classes, of the second; one per class for more; a LightGBM model's raw score, which is the
  log-odds divided by its ``sigmoid`` parameter, 1 by default) and for a regressor whose link is not the
  identity (Poisson, gamma, tweedie: the log of the prediction; LightGBM's ``cross_entropy``: its log-odds;
  ``reg_sqrt``: the signed square root of the prediction), ``"prediction"`` otherwise;
- linear and logistic models (``registry.inference.linear_shap``): ``"prediction"``, or ``"margin"`` for a
  logistic regression, against a baseline row of the model's own features: the mean of the version's drift
  reference when it has one (``"reference"``), else the all-zeros row (``"zeros"``: the training mean where a
  StandardScaler standardized them). ``baseline`` says which (trees: ``"covers"``, the training data as the
  nodes' covers record it).

Each version explains in the spaces where its attributions are exact, and only there: one today for every
kind (the one above). A caller may name the space it wants (:class:`ExplainAsk`), so that an alias moved to a
version of another kind is refused (``NotExplainable`` naming the spaces the version offers) rather than
answered in a space the caller did not expect. Probabilities of a logistic regression or a boosted classifier
are not offered: linear SHAP and path-dependent TreeSHAP are exact on the decision function only, and an
attribution that merely adds up is not given as a Shapley value.

Behind a Pipeline's steps the attributions are the model's, on the features the steps made; each comes
from one input column when every step maps columns so (scalers and ordinal encoders one to one, an
imputer's columns and missing-value indicators to theirs, a one-hot encoder's to its source column, a
ColumnTransformer's parts, passthrough), and each column's value is the sum of its
features'. Where a step mixes columns (a polynomial, a projection, an unknown step) there is no exact
mapping: the values are then given per transformed feature, and the answer says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

import numpy as np

from registry.errors import ArtifactCorrupted, ExplanationTimedOut, InvalidInput, NotExplainable, listed
from registry.inference.fast_boosting import CompiledBoosting
from registry.inference.linear_shap import linear_shap
from registry.inference.tree_shap import ExplanationTimedOut as WalkTimedOut
from registry.inference.tree_shap import NotExplainable as RecordsNotExplainable
from registry.inference.tree_walk import NodesDamaged
from registry.serving.admission import RETRY_AFTER_SECONDS
from registry.serving.cache import ServableModel
from registry.inference.predictors import LinearPredictor, TreePredictor, dense

# Steps whose every output column is the input column at the same place.
_ONE_TO_ONE = {"StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "OrdinalEncoder"}


SPACES = ("prediction", "probability", "margin")
_MAX_QUOTED = 40  # characters of a caller's value quoted back in a message


@dataclass(frozen=True)
class ExplainAsk:
    """A caller's request for explanations: in ``space``, or in the version's own space (None)."""

    space: str | None = None


def explain_asked(value: object, *, what: str = "explain") -> ExplainAsk | None:
    """What a JSON ``explain`` field asks (absent or false: nothing): ``true``, or ``{"space": "<space>"}``;
    anything else is an ``InvalidInput`` saying what to send."""
    if value is None or value is False:
        return None
    if value is True:
        return ExplainAsk()
    if not isinstance(value, dict):
        raise InvalidInput(f'{what} must be true, false or {{"space": "<space>"}} with a space of {", ".join(SPACES)}; '
                           f"got {_quoted(value)}")
    unknown = [key for key in value if key != "space"]
    if unknown:
        raise InvalidInput(f'{what} takes only "space" (one of {", ".join(SPACES)}); unexpected key(s) '
                           f'{listed([_quoted(key) for key in unknown])}')
    space = value.get("space")
    if space is None:
        return ExplainAsk()
    if space not in SPACES:
        raise InvalidInput(f"{what}.space must be one of {', '.join(SPACES)}; got {_quoted(space)}")
    return ExplainAsk(space)


def _quoted(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    text = repr(value)
    return text if len(text) <= _MAX_QUOTED else text[:_MAX_QUOTED - 3] + "..."


@dataclass(frozen=True)
class Explanations:
    """The rows' explanations, the space they are in, what they are measured from, and whether their keys
    are input columns."""

    space: str
    rows: list[dict]
    by_input_column: bool = True
    note: str | None = None
    baseline: str = "covers"

    def to_dict(self) -> dict:
        """The fields the predict routes add to their answer."""
        body = {"explanations": self.rows, "explanation_space": self.space, "explanation_baseline": self.baseline}
        if not self.by_input_column:
            body["explanation_columns"] = "transformed"
            body["explanation_note"] = self.note
        return body


@dataclass(frozen=True)
class _Layout:
    """How one loaded version's attributions become its answer, worked out once per version: the keys of
    ``values``, and the input column each feature adds to (None: the features are the input columns)."""

    names: list
    sources: np.ndarray | None
    note: str | None


_LAYOUTS: WeakKeyDictionary = WeakKeyDictionary()  # predictor -> _Layout, for as long as the version is loaded


def offered_spaces(servable: ServableModel) -> tuple[str, ...]:
    """The spaces ``servable`` explains in exactly (none for a model its library serves)."""
    predictor = servable.predictor
    if isinstance(predictor, TreePredictor):
        return (_tree_space(predictor.compiled),)
    if isinstance(predictor, LinearPredictor):
        return ("margin",) if predictor.classes is not None else ("prediction",)
    return ()


def space_for(servable: ServableModel, ask: ExplainAsk | None) -> str:
    """The space ``servable`` explains ``ask`` in; ``NotExplainable`` when it explains in none, or not in the one
    asked (naming those it offers)."""
    where = f"version {servable.version} of {servable.model!r}"
    spaces = offered_spaces(servable)
    if not spaces:
        raise NotExplainable(f"{where} is served by its library ({servable.kind or 'this kind'} with these steps), "
                             "not by a compiled form: explanations exist for trees, forests, boosted trees and "
                             "linear and logistic models")
    if ask is not None and ask.space is not None and ask.space not in spaces:
        offered = " or ".join(spaces)
        raise NotExplainable(f"{where} is explained exactly in {offered} space only, not {ask.space}: ask for "
                             f"{offered}, or send explain: true for its own", errors={"spaces": list(spaces)})
    return spaces[0]


def takes_reference(servable: ServableModel) -> bool:
    """Whether ``servable``'s explanations are measured from its drift reference's mean (a linear model's)."""
    return isinstance(servable.predictor, LinearPredictor)


def model_features(servable: ServableModel, rows) -> np.ndarray:
    """``rows`` (checked against the signature) as ``servable``'s model takes them, after its Pipeline's steps."""
    if servable.takes_frame and isinstance(rows, np.ndarray):
        import pandas as pd  # loaded already: a model that takes named columns was unpickled with it

        rows = pd.DataFrame(rows, columns=servable.signature.names)
    return np.asarray(dense(servable.predictor.transformed(rows)), dtype=np.float64)


def explain(servable: ServableModel, rows, ask: ExplainAsk | None = None, *,
            reference: np.ndarray | None = None, until: float | None = None) -> Explanations:
    """The explanations of ``rows`` (as the predictor takes them) by ``servable``, in the space ``ask`` names
    (by default its own); a linear model's against ``reference`` (the mean of its drift reference in the
    model's features) when given. ``NotExplainable`` says why there are none; a tree model's stop when ``until``
    (``time.monotonic()`` seconds; None: never) passes, ``ExplanationTimedOut``. What they may cost is
    checked before (``registry.serving.explain_bounds.admit``)."""
    predictor = servable.predictor
    where = f"version {servable.version} of {servable.model!r}"
    space = space_for(servable, ask)
    baseline = "covers"
    try:
        transformed = dense(predictor.transformed(rows))
        if isinstance(predictor, TreePredictor):
            base, values = predictor.compiled.explain(transformed, deadline=until)
        else:
            features = np.asarray(transformed, dtype=np.float64)
            baseline, row = _linear_baseline(reference, features.shape[1])
            base, values = linear_shap(predictor.coef, predictor.intercept, rows=features, reference=row)
    except RecordsNotExplainable as error:
        raise NotExplainable(f"{where} cannot be explained: {error}") from None
    except WalkTimedOut:
        raise ExplanationTimedOut(
            f"the explanation of {len(rows):,} rows by {where} was stopped when its deadline passed (the caller's "
            "X-Request-Timeout, or the server's EXPLAIN_TIMEOUT_SECONDS); nothing of it was answered: explain fewer "
            "rows per request, or predict without explain", RETRY_AFTER_SECONDS) from None
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"{where} could not explain these rows: {error}") from None
    except NodesDamaged as error:
        raise ArtifactCorrupted(f"{where} cannot explain in this worker: {error}; retry after its next alias "
                                "refresh (ALIAS_REFRESH_SECONDS)") from None
    layout = _layout(servable, values.shape[1])
    if layout.sources is not None:
        summed = np.zeros((values.shape[0], len(layout.names), values.shape[2]))
        np.add.at(summed, (slice(None), layout.sources), values)
        values = summed
    return Explanations(space, _render(base, values, layout.names), by_input_column=layout.note is None,
                        note=layout.note, baseline=baseline)


def _linear_baseline(reference: np.ndarray | None, width: int) -> tuple[str, np.ndarray]:
    """The row a linear model is explained against, and its name: the reference mean when it fits the model."""
    if reference is not None and reference.shape == (width,):
        return "reference", reference
    return "zeros", np.zeros(width)


def _layout(servable: ServableModel, width: int) -> _Layout:
    """The version's layout, worked out on its first explanation."""
    predictor = servable.predictor
    layout = _LAYOUTS.get(predictor)
    if layout is not None and (layout.sources is not None or len(layout.names) == width):
        return layout
    names = list(servable.signature.names)
    sources = feature_sources(predictor.transforms, len(names))
    if sources is None:
        note = (f"a step of version {servable.version} of {servable.model!r}'s Pipeline mixes input columns: the "
                "values are per transformed feature, as the model saw them")
        layout = _Layout(_transformed_names(predictor.transforms, width), None, note)
    elif sources == list(range(len(names))):
        layout = _Layout(names, None, None)
    else:
        layout = _Layout(names, np.asarray(sources, dtype=np.intp), None)
    _LAYOUTS[predictor] = layout
    return layout


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
    else:
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
