"""Scoring outside the server (Spark, Dask, the CLI) exactly as the server answers.

A batch job loads the version's artifact with the server's own restricted loader and compiled
predictor (:func:`load_version`), checks each partition's rows against the signature with the
online route's own checks, and runs the model as the online route runs it (:func:`score_columns`):
every row's answer is the online route's, bit for bit. Nothing here touches a database.
"""
from registry.errors import InvalidInput
from registry.facts import VersionInfo
from registry.serving.cache import ServableModel
from registry.serving.inputs import rows_from_array, rows_from_columns, rows_from_csv_columns
from registry.serving.loader import prepare, servable
from registry.serving.running import Prediction, run_model


def load_version(data: bytes, info: VersionInfo, *, max_model_bytes: int) -> ServableModel:
    """The version whose artifact is ``data`` (already checked against ``info.sha256``), ready to predict."""
    return servable(info, prepare(data, info.signature, max_model_bytes))


def score_columns(
    model: ServableModel, columns: list[str], data: list[list], *, proba: bool, first_row: int = 0, text: bool = False,
) -> Prediction:
    """Predict rows given as lists in the order of ``columns`` (feature names), checked as the online
    route checks a ``dataframe_split`` body (with ``text``, cells of a CSV file, as the CSV route checks
    them); an InvalidInput names the first bad rows (from ``first_row``)."""
    _check_proba(model, proba)
    if text:
        rows = rows_from_csv_columns(columns, data, model.signature, first_row=first_row)
    else:
        rows = rows_from_columns(columns, data, model.signature, max_rows=max(len(data), 1), first_row=first_row)
    return run_model(model, rows, proba, arrays=True)


def score_matrix(model: ServableModel, matrix, *, proba: bool, first_row: int = 0) -> Prediction:
    """Predict a float64 ``[rows, features]`` array in signature order (a batch of numeric columns: what the
    JSON route makes of the same numbers), checked finite as the online routes check every number."""
    _check_proba(model, proba)
    rows = rows_from_array(matrix, model.signature, max(len(matrix), 1), first_row=first_row)
    return run_model(model, rows, proba, arrays=True)


def _check_proba(model: ServableModel, proba: bool) -> None:
    if proba and model.task != "classification":
        raise InvalidInput(f"version {model.version} of {model.model!r} is a regressor: probabilities exist "
                           "only for classifiers")
