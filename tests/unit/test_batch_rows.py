"""A batch partition's rows (issue 46): numbers reach the model as one matrix however they come (a pandas frame
from Dask, Arrow arrays from the Spark UDF, integer columns), each answer bit for bit the online route's; a missing
value in any of them (NaN, an Arrow null, a nullable column's NA) fails naming its row and feature, never a silent
null; CSV cells given as text are parsed as the CSV route parses them."""
import hashlib
import io

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from registry.facts import VersionInfo
from registry.serving.offline import load_version, score_columns
from registry_client import batch
from registry_client.batch import InvalidRows, Plan, arrow_answer, frame_answer

FEATURES = ["a", "b", "c"]
RNG = np.random.default_rng(0)
X = RNG.normal(size=(500, 3)) * [1, 10, 100]


@pytest.fixture(scope="module")
def plan() -> Plan:
    """A logistic regression over FEATURES, loaded in this process as an executor loads it."""
    estimator = LogisticRegression().fit(X, X[:, 0] + X[:, 1] / 10 > 0)
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    data = buffer.getvalue()
    sha256 = hashlib.sha256(data).hexdigest()
    signature = {"features": [{"name": name, "dtype": "float64"} for name in FEATURES], "classes": [False, True]}
    info = VersionInfo("m", 1, sha256, "classification", signature, kind="sklearn")
    batch._LOADED[sha256] = load_version(data, info, max_model_bytes=1 << 30)
    return Plan(url="http://unused", token=None, model="m", version=1, alias=None, sha256=sha256,
                size_bytes=len(data), task="classification", kind="sklearn", signature=signature)


def online(plan: Plan, rows: np.ndarray):
    """What the JSON route answers for ``rows`` (its dataframe_split body's checks and parse)."""
    return score_columns(batch.loaded(plan), FEATURES, rows.tolist(), proba=True)


def assert_same(answer, expected):
    assert np.array_equal(answer.predictions, expected.predictions)
    assert np.array_equal(answer.probabilities, expected.probabilities)


@pytest.mark.parametrize("integers", [False, True], ids=["floats", "integers"])
def test_arrow_arrays_and_a_frame_answer_what_the_json_route_answers(plan, integers):
    rows = np.round(X) if integers else X
    kind = np.int64 if integers else np.float64
    arrays = [pa.array(rows[:, j].astype(kind)) for j in range(3)]
    frame = pd.DataFrame({name: rows[:, j].astype(kind) for j, name in enumerate(FEATURES)})
    expected = online(plan, rows)
    assert_same(arrow_answer(plan, arrays, proba=True), expected)
    assert_same(frame_answer(plan, frame, proba=True, where="", first_row=0, text=False), expected)


@pytest.mark.parametrize("missing", ["arrow null in an integer column", "arrow NaN", "pandas NA in a nullable column",
                                     "pandas NaN"])
def test_a_missing_value_fails_naming_its_row_and_feature(plan, missing):
    rows = np.round(X[:20])
    if missing.startswith("arrow"):
        arrays = [pa.array(rows[:, j].astype(np.int64)) for j in range(3)]
        values = rows[:, 1].tolist()
        values[7] = None if "null" in missing else np.nan
        arrays[1] = pa.array(values, type=pa.int64() if "null" in missing else pa.float64())
        score = lambda: arrow_answer(plan, arrays, where="partition 3", first_row=100)  # noqa: E731
    else:
        frame = pd.DataFrame({name: rows[:, j] for j, name in enumerate(FEATURES)})
        if "NA" in missing:
            frame["b"] = frame["b"].astype("Int64")
            frame.loc[7, "b"] = pd.NA
        else:
            frame.loc[7, "b"] = np.nan
        score = lambda: frame_answer(plan, frame, proba=False, where="partition 3", first_row=100,  # noqa: E731
                                     text=False)
    with pytest.raises(InvalidRows) as refused:
        score()
    assert "m v1 refused partition 3: row 107, feature b" in str(refused.value)


def test_csv_cells_as_arrow_text_are_parsed_as_the_csv_route_parses_them(plan):
    cells = [["0.5", "1e1", "-3"], ["2", " 4.25 ", "7"]]
    arrays = [pa.array([row[j] for row in cells]) for j in range(3)]
    expected = score_columns(batch.loaded(plan), FEATURES, cells, proba=True, text=True)
    assert_same(arrow_answer(plan, arrays, proba=True, text=True), expected)


@pytest.mark.parametrize("proba", [False, True], ids=["predict", "proba"])
def test_a_dask_partitions_scores_sit_beside_its_own_rows_whatever_its_index_and_other_columns(plan, proba):
    import dask.dataframe as dd

    from registry_client.engines import dask_scores

    rows = X[:40]
    frame = pd.DataFrame({"id": np.arange(40), "c": rows[:, 2], "a": rows[:, 0], "b": rows[:, 1]},
                         index=np.repeat([7, 3, 3, 0, 9], 8))  # a repeated index, features out of order
    scored = dask_scores(dd.from_pandas(frame, npartitions=3, sort=False), plan, proba=proba).compute(scheduler="sync")
    expected = online(plan, rows)
    assert scored.index.tolist() == frame.index.tolist()
    assert scored["id"].tolist() == list(range(40)) and np.array_equal(scored[["c", "a", "b"]], frame[["c", "a", "b"]])
    assert np.array_equal(scored["prediction"], expected.predictions)
    assert scored["model_version"].tolist() == [1] * 40
    if proba:
        assert np.array_equal(scored[["probability_False", "probability_True"]], expected.probabilities)
    else:
        assert "probability_True" not in scored


def test_a_dask_job_keeps_the_columns_asked_for_and_refuses_at_once_a_missing_or_clashing_one(plan):
    import dask.dataframe as dd

    from registry_client.engines import dask_scores

    rows = X[:40]
    frame = pd.DataFrame({"id": np.arange(40), "c": rows[:, 2], "a": rows[:, 0], "b": rows[:, 1]})
    ddf = dd.from_pandas(frame, npartitions=3, sort=False)
    scored = dask_scores(ddf, plan, keep=["id"]).compute(scheduler="sync")
    assert scored.columns.tolist() == ["id", "prediction", "model_version"]
    assert scored["id"].tolist() == list(range(40))
    assert np.array_equal(scored["prediction"], online(plan, rows).predictions)
    assert dask_scores(ddf, plan, proba=True, keep=[]).compute(scheduler="sync").columns.tolist() == [
        "prediction", "probability_False", "probability_True", "model_version"]

    with pytest.raises(InvalidRows, match=r"m v1 cannot score this frame: the frame has no columns \['customer'\]"):
        dask_scores(ddf, plan, keep=["customer"])
    clashing = dd.from_pandas(frame.rename(columns={"id": "model_version"}), npartitions=3, sort=False)
    with pytest.raises(InvalidRows, match=r"the frame already has the columns \['model_version'\] the scores go in"):
        dask_scores(clashing, plan, keep=["model_version", "a"])
    assert dask_scores(clashing, plan, keep=["a"]).compute(scheduler="sync").columns.tolist() == [
        "a", "prediction", "model_version"]
