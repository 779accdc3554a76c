"""Batch scoring on Dask and Spark: a planned version scored in every partition, exactly as the server scores.

Both take a :class:`~registry_client.batch.Plan`, made once when the job is planned; every executor
fetches the artifact once per machine and loads it once per process (:mod:`registry_client.batch`).
Dask and pyspark are imported only by the function that uses them.
"""
from __future__ import annotations

from registry_client.batch import (
    PREDICTION_COLUMN,
    VERSION_COLUMN,
    InvalidRows,
    Plan,
    empty_scores,
    prediction_dtype,
    probability_columns,
    score_frame,
)


def dask_scores(ddf, job: Plan, *, proba: bool = False, text: bool = False, keep: list[str] | None = None):
    """``ddf`` with its scores beside it (``prediction``, ``probability_<class>`` with ``proba``, ``model_version``),
    lazily, over ``map_partitions``; a partition with a row the signature refuses fails the job naming it.
    ``keep``: only those of ``ddf``'s columns, in that order (refused at once when one is missing, or is a
    score's). ``text``: the features are CSV cells read as text (see :func:`~registry_client.batch.score_frame`)."""
    kept = None if keep is None else list(keep)
    if kept is not None:
        _check_kept(job, list(ddf.columns), kept, proba)
    from dask.dataframe.utils import make_meta  # here: dask is the caller's, installed with it

    meta = make_meta(ddf if kept is None else ddf[kept]).join(empty_scores(job, proba=proba))
    return ddf.map_partitions(_scored_partition, job, proba, text, kept, meta=meta, align_dataframes=False)


def _scored_partition(frame, job: Plan, proba: bool, text: bool, kept: list[str] | None, partition_info=None):
    import pandas as pd

    number = (partition_info or {}).get("number", 0)
    scores = score_frame(job, frame, proba=proba, where=f"partition {number}", text=text)
    if kept is not None:
        frame = frame[kept]
    return pd.concat([frame, scores], axis=1)  # on the frame's own index: join's alignment would find nothing to do


def spark_column(spark, job: Plan, *, proba: bool = False, text: bool = False, arrow: bool | None = None):
    """A Spark column scoring the plan's features of each row: the prediction, or a struct of ``prediction`` and
    ``probabilities`` (in the classes' order) with ``proba``. Its metadata names the model and the version that
    scored it. ``text``: the features are CSV cells read as strings.

    On pyspark 4.1 and later (``arrow`` None or True) it is a scalar-iterator Arrow UDF: each batch's columns
    reach the model as Arrow arrays and its scores leave as Arrow arrays, with no pandas frame on the way for
    numbers; before 4.1 (or ``arrow=False``) a scalar-iterator pandas UDF of the features' struct."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kind = {"int64": T.LongType(), "float64": T.DoubleType(), "str": T.StringType()}[prediction_dtype(job)]
    returned = T.StructType([T.StructField(PREDICTION_COLUMN, kind),
                             T.StructField("probabilities", T.ArrayType(T.DoubleType()))]) if proba else kind
    columns = [F.col(f"`{name}`") for name in job.features]
    if arrow is None:
        arrow = hasattr(F, "arrow_udf")
    if arrow:
        udf = F.arrow_udf(returned)(_typed(_arrow_scores(job, proba, text), arrays=len(columns)))(*columns)
    else:
        udf = F.pandas_udf(returned)(_typed(_pandas_scores(job, proba, text)))(F.struct(*columns))
    metadata = {"registry_model": job.model, "registry_version": job.version, "registry_sha256": job.sha256}
    return udf.alias(PREDICTION_COLUMN, metadata=metadata)


def spark_scores(df, job: Plan, *, proba: bool = False, text: bool = False, keep: list[str] | None = None):
    """``df`` with its scores after its columns, as :func:`dask_scores` gives them (``prediction``, a
    ``probability_<class>`` per class with ``proba``, ``model_version``), over ``mapInArrow``: each Arrow batch of
    the whole frame goes to a Python worker, its features are scored as the online route scores them, and its
    columns come back as they went (``keep``: only those named, in that order). The ``prediction`` field's
    metadata names the model and the version.

    It costs less than :func:`spark_column` where the frame is little more than its features (no UDF's column
    machinery on the way); a wide frame sends every column through Python and back, where the column sends the
    features alone. Refused at once (InvalidRows) when a feature or a kept column is not a column of ``df``, or a
    score's column already is one kept."""
    from pyspark.sql import types as T

    kept = list(df.columns if keep is None else keep)
    _check_kept(job, df.columns, kept, proba, needed=job.features)
    kind = {"int64": T.LongType(), "float64": T.DoubleType(), "str": T.StringType()}[prediction_dtype(job)]
    metadata = {"registry_model": job.model, "registry_version": job.version, "registry_sha256": job.sha256}
    fields = [T.StructField(PREDICTION_COLUMN, kind, metadata=metadata)]
    if proba:
        fields += [T.StructField(name, T.DoubleType()) for name in probability_columns(job)]
    fields.append(T.StructField(VERSION_COLUMN, T.LongType(), nullable=False))
    return df.mapInArrow(_arrow_frame_scores(job, proba, text, kept),
                         T.StructType([df.schema[name] for name in kept] + fields))


def _check_kept(job: Plan, columns: list[str], kept: list[str], proba: bool,
                needed: list[str] | tuple[str, ...] = ()) -> None:
    """Refuse (InvalidRows) a frame of ``columns`` without one of those ``kept`` or ``needed``, or that would keep
    a score's."""
    missing = [name for name in dict.fromkeys([*needed, *kept]) if name not in columns]
    taken = [name for name in _score_columns(job, proba) if name in kept]
    if missing or taken:
        said = ([f"the frame has no columns {missing}"] if missing else []) + (
            [f"the frame already has the columns {taken} the scores go in: rename or drop them"] if taken else [])
        raise InvalidRows(f"{job.model} v{job.version} cannot score this frame: {'; '.join(said)}", 422)


def _score_columns(job: Plan, proba: bool) -> list[str]:
    return [PREDICTION_COLUMN, *(probability_columns(job) if proba else []), VERSION_COLUMN]


def _arrow_frame_scores(job: Plan, proba: bool, text: bool, kept: list[str]):
    """``mapInArrow``'s body: each record batch's ``kept`` arrays with its scores' after them."""
    names = [*kept, *_score_columns(job, proba)]

    def score(batches):
        import numpy as np
        import pyarrow as pa

        from registry_client.batch import arrow_answer

        kind = {"int64": pa.int64(), "float64": pa.float64(), "str": pa.string()}[prediction_dtype(job)]
        partition, offset = _partition(), 0
        for batch in batches:
            answer = arrow_answer(job, [batch.column(name) for name in job.features], proba=proba,
                                  where=f"partition {partition}", first_row=offset, text=text)
            offset += batch.num_rows
            scores = [pa.array(answer.predictions, type=kind)]
            if proba:
                probabilities = np.asarray(answer.probabilities, dtype=np.float64)
                scores += [pa.array(probabilities[:, k]) for k in range(probabilities.shape[1])]
            scores.append(pa.array(np.full(batch.num_rows, job.version, dtype=np.int64)))
            yield pa.RecordBatch.from_arrays([*(batch.column(name) for name in kept), *scores], names=names)

    return score


def _partition() -> int:
    from pyspark import TaskContext

    return TaskContext.get().partitionId() if TaskContext.get() is not None else 0


def _arrow_scores(job: Plan, proba: bool, text: bool):
    """The Arrow UDF's body: each batch's feature arrays scored, its scores made Arrow arrays of the UDF's type."""
    from registry_client.batch import arrow_answer

    def score(batches):
        import numpy as np
        import pyarrow as pa

        kind = {"int64": pa.int64(), "float64": pa.float64(), "str": pa.string()}[prediction_dtype(job)]
        partition, offset = _partition(), 0
        for arrays in batches:
            arrays = list(arrays) if isinstance(arrays, tuple) else [arrays]
            answer = arrow_answer(job, arrays, proba=proba, where=f"partition {partition}", first_row=offset,
                                  text=text)
            offset += len(arrays[0])
            predictions = pa.array(answer.predictions, type=kind)
            if not proba:
                yield predictions
                continue
            probabilities = np.ascontiguousarray(answer.probabilities, dtype=np.float64)
            width = probabilities.shape[1]
            lists = pa.ListArray.from_arrays(pa.array(np.arange(0, probabilities.size + 1, width, dtype=np.int32)),
                                             pa.array(probabilities.ravel()))
            yield pa.StructArray.from_arrays([predictions, lists], names=[PREDICTION_COLUMN, "probabilities"])

    return score


def _pandas_scores(job: Plan, proba: bool, text: bool):
    """The pandas UDF's body: each batch's struct of features scored as a frame."""

    def score(batches):
        import pandas as pd

        partition, offset = _partition(), 0
        for frame in batches:
            scores = score_frame(job, frame, proba=proba, where=f"partition {partition}", first_row=offset, text=text)
            offset += len(frame)
            if not proba:
                yield scores[PREDICTION_COLUMN]
                continue
            probabilities = list(scores[probability_columns(job)].to_numpy())
            yield pd.DataFrame({PREDICTION_COLUMN: scores[PREDICTION_COLUMN], "probabilities": probabilities})

    return score


def _typed(score, *, arrays: int | None = None):
    """``score`` typed as pyspark reads a scalar-iterator UDF: Iterator[DataFrame] -> Iterator[Series] for pandas;
    for Arrow, Iterator[Array] -> Iterator[Array] of one column, Iterator[Tuple[Array, ...]] of more. The hints are
    objects, not the strings this module's annotations would make them."""
    from collections.abc import Iterator

    def typed(batches):
        return score(batches)

    if arrays is None:
        import pandas as pd

        typed.__annotations__ = {"batches": Iterator[pd.DataFrame], "return": Iterator[pd.Series]}
        return typed
    import pyarrow as pa

    taken = pa.Array if arrays == 1 else tuple[pa.Array, ...]
    typed.__annotations__ = {"batches": Iterator[taken], "return": Iterator[pa.Array]}
    return typed

