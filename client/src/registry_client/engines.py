"""Batch scoring on Dask and Spark: a planned version scored in every partition, exactly as the server scores.

Both take a :class:`~registry_client.batch.Plan`, made once when the job is planned; every executor
fetches the artifact once per machine and loads it once per process (:mod:`registry_client.batch`).
Dask and pyspark are imported only by the function that uses them.
"""
from __future__ import annotations

from registry_client.batch import (
    PREDICTION_COLUMN,
    Plan,
    empty_scores,
    prediction_dtype,
    probability_columns,
    score_frame,
)


def dask_scores(ddf, job: Plan, *, proba: bool = False, text: bool = False):
    """``ddf`` with its scores beside it (``prediction``, ``probability_<class>`` with ``proba``, ``model_version``),
    lazily, over ``map_partitions``; a partition with a row the signature refuses fails the job naming it.
    ``text``: the features are CSV cells read as text (see :func:`~registry_client.batch.score_frame`)."""
    meta = ddf._meta.join(empty_scores(job, proba=proba))
    return ddf.map_partitions(_scored_partition, job, proba, text, meta=meta, align_dataframes=False)


def _scored_partition(frame, job: Plan, proba: bool, text: bool, partition_info=None):
    number = (partition_info or {}).get("number", 0)
    return frame.join(score_frame(job, frame, proba=proba, where=f"partition {number}", text=text))


def spark_column(spark, job: Plan, *, proba: bool = False, text: bool = False):
    """A Spark column scoring the plan's features of each row (a scalar-iterator pandas UDF): the
    prediction, or a struct of ``prediction`` and ``probabilities`` (in the classes' order) with
    ``proba``. Its metadata names the model and the version that scored it. ``text``: the features are
    CSV cells read as strings."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kind = {"int64": T.LongType(), "float64": T.DoubleType(), "str": T.StringType()}[prediction_dtype(job)]
    returned = T.StructType([T.StructField(PREDICTION_COLUMN, kind),
                             T.StructField("probabilities", T.ArrayType(T.DoubleType()))]) if proba else kind

    def score(batches):
        import pandas as pd
        from pyspark import TaskContext

        partition = TaskContext.get().partitionId() if TaskContext.get() is not None else 0
        offset = 0
        for frame in batches:
            scores = score_frame(job, frame, proba=proba, where=f"partition {partition}", first_row=offset, text=text)
            offset += len(frame)
            if not proba:
                yield scores[PREDICTION_COLUMN]
                continue
            probabilities = list(scores[probability_columns(job)].to_numpy())
            yield pd.DataFrame({PREDICTION_COLUMN: scores[PREDICTION_COLUMN], "probabilities": probabilities})

    udf = F.pandas_udf(returned)(_iterator(score))
    metadata = {"registry_model": job.model, "registry_version": job.version, "registry_sha256": job.sha256}
    return udf(F.struct(*[F.col(f"`{name}`") for name in job.features])).alias(PREDICTION_COLUMN, metadata=metadata)


def _iterator(score):
    """``score`` typed as pyspark reads a scalar-iterator pandas UDF (Iterator[DataFrame] -> Iterator[Series]);
    the hints are objects, not the strings this module's annotations would make them."""
    from collections.abc import Iterator

    import pandas as pd

    def typed(batches):
        return score(batches)

    typed.__annotations__ = {"batches": Iterator[pd.DataFrame], "return": Iterator[pd.Series]}
    return typed
