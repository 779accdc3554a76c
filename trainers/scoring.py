"""``python -m trainers score``: a registry's version scores files of rows on this machine, Dask or Spark.

The reference is resolved once, before any row is read (the job's plan; an archived version is refused);
every file and partition is scored by that version, and the run (who, which version, inputs, outputs, rows,
engine, times, how it ended) is recorded in the registry, failed runs too. The engines write into a hidden
directory beside ``--output``, renamed to it only when every row is scored, and taken back when the registry
does not record the run as succeeded (its version was archived while the job scored): a job that fails
leaves no output, and the record says so (``outputs: []``). CSV output neutralises formula cells as the
HTTP CSV exports do (registry/csv_cells.py).
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from registry_client import RegistryClient, RegistryError, engines
from registry_client.batch import Plan, neutral_frame, neutral_frames, probability_columns, score_frame

from trainers import progress
from trainers.errors import ConfigurationError, TrainerError

ENGINES = ("local", "dask", "spark")
# A CSV file's cells as text, an empty cell as "": the CSV predict route's own parsing decides what they are.
CSV_AS_TEXT = {"dtype": str, "keep_default_na": False}
FORMATS = ("parquet", "csv")
REFERENCE = re.compile(r"^(?P<model>[A-Za-z0-9][A-Za-z0-9._-]{0,127})(?:@(?P<alias>[a-z][a-z0-9_-]{0,63})|/(?P<number>[0-9]{1,10}))$")


@dataclass(frozen=True)
class ScoringJob:
    """What to score, with what, into where."""

    reference: str  # name@alias or name/version
    inputs: tuple[str, ...]  # paths or globs
    output: Path
    engine: str
    proba: bool = False


@dataclass(frozen=True)
class ScoringOutcome:
    """A finished job: the version that scored it, the rows, and the run the registry recorded."""

    model: str
    version: int
    alias: str | None
    rows: int
    inputs: list[str]
    output: str
    engine: str
    batch_run_id: int

    def to_dict(self) -> dict:
        """The JSON summary ``--json`` prints."""
        return {"model": self.model, "version": self.version, "alias": self.alias, "rows": self.rows,
                "inputs": self.inputs, "output": self.output, "engine": self.engine, "batch_run_id": self.batch_run_id}


def parse_reference(reference: str) -> tuple[str, str | int]:
    """``(model, alias)`` of ``name@alias``, ``(model, number)`` of ``name/version``."""
    found = REFERENCE.fullmatch(reference)
    if found is None:
        raise ConfigurationError(f"--model {reference!r}: give NAME@ALIAS (churn@production) or NAME/VERSION (churn/3)")
    return found["model"], found["alias"] or int(found["number"])


def score(client: RegistryClient, job: ScoringJob) -> ScoringOutcome:
    """Plan the job (resolve its reference once), score every input into ``job.output``, and record the run;
    a failure is recorded as a failed run before it is raised."""
    model, ref = parse_reference(job.reference)
    files = _input_files(job.inputs)
    fmt = _format_of(files)
    _check_output(job.output)
    plan = client.plan_batch(model, ref)
    started = datetime.now(timezone.utc)
    existed = job.output.exists()
    with _staging(job.output) as staged:
        try:
            rows = ENGINE_RUNS[job.engine](plan, files, fmt, replace(job, output=staged))
            os.replace(staged, job.output)  # an empty --output is replaced whole
        except Exception as exc:  # a partition's failure, however its engine wrapped it: recorded, then raised
            _record(client, plan, job, 0, started, "failed", _reason(exc))
            raise TrainerError(f"scoring with {model} v{plan.version} failed: {_reason(exc)}") from exc
        run = _record_published(client, plan, job, rows, started, staged, existed)
    return ScoringOutcome(model, plan.version, plan.alias, rows, list(job.inputs), str(job.output), job.engine, run.id)


@contextmanager
def _staging(output: Path) -> Iterator[Path]:
    """Where the engines write: a path in a new hidden directory beside ``output`` (the same file system, so
    a rename publishes it at once), removed with whatever is still in it when the job ends."""
    output.parent.mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.scoring-"))
    try:
        yield holder / output.name
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def _record_published(client: RegistryClient, plan: Plan, job: ScoringJob, rows: int, started: datetime,
                      staged: Path, existed: bool):
    """The run recorded as succeeded; when the registry refuses it (the version was archived while the job
    scored: recorded as failed) or cannot be told, the output is taken back first."""
    try:
        return _record(client, plan, job, rows, started, "succeeded", "")
    except BaseException as exc:
        os.replace(job.output, staged)  # back into the staging directory, removed with it
        if existed:
            job.output.mkdir()
        if isinstance(exc, RegistryError) and exc.status == 410:
            reason = f"{plan.model} v{plan.version} was archived while the job scored; its output was removed"
            _record(client, plan, job, 0, started, "failed", reason)
            raise TrainerError(f"scoring with {plan.model} v{plan.version} failed: {reason}") from exc
        raise


def _score_local(plan: Plan, files: list[str], fmt: str, job: ScoringJob) -> int:
    import pandas as pd

    job.output.mkdir(parents=True, exist_ok=True)
    rows = 0
    for file in progress.iterate(files, len(files), "scoring"):
        frame = pd.read_parquet(file) if fmt == "parquet" else pd.read_csv(file, **CSV_AS_TEXT)
        scored = frame.join(score_frame(plan, frame, proba=job.proba, where=file, text=fmt == "csv"))
        target = job.output / Path(file).name
        if fmt == "parquet":
            scored.to_parquet(target, index=False)
        else:
            neutral_frame(scored).to_csv(target, index=False)
        rows += len(frame)
    return rows


def _score_dask(plan: Plan, files: list[str], fmt: str, job: ScoringJob) -> int:
    import dask

    address = dask.config.get("scheduler-address", None)  # DASK_SCHEDULER_ADDRESS names a cluster's scheduler
    if address:
        from distributed import Client

        with Client(address):
            return _write_dask(plan, files, fmt, job)
    return _write_dask(plan, files, fmt, job)


def _write_dask(plan: Plan, files: list[str], fmt: str, job: ScoringJob) -> int:
    import dask.dataframe as dd

    frame = dd.read_parquet(files) if fmt == "parquet" else dd.read_csv(files, **CSV_AS_TEXT)
    scored = engines.dask_scores(frame, plan, proba=job.proba, text=fmt == "csv")
    if fmt == "parquet":
        progress.dask_compute([scored.to_parquet(str(job.output), write_index=False, compute=False)])
        return len(dd.read_parquet(str(job.output)))
    written = scored.map_partitions(neutral_frame).to_csv(str(job.output / "part-*.csv"), index=False, compute=False)
    names = progress.dask_compute(written)
    return sum(len(dd.read_csv(name, **CSV_AS_TEXT)) for name in names)


def _score_spark(plan: Plan, files: list[str], fmt: str, job: ScoringJob) -> int:
    warnings.filterwarnings("ignore", message=PANDAS_3_NOTICE.split(":")[1], category=FutureWarning)
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = _spark_session(SparkSession)
    # CSV cells stay text, parsed as the CSV predict route parses them (Spark reads every column as a string)
    frame = spark.read.parquet(*files) if fmt == "parquet" else spark.read.option("header", True).csv(files)
    scored = frame.withColumn("prediction", engines.spark_column(spark, plan, proba=job.proba, text=fmt == "csv"))
    if job.proba:  # a column per class, as the other engines write them (CSV holds no arrays)
        columns = [F.col("prediction.probabilities")[k].alias(name) for k, name in enumerate(probability_columns(plan))]
        scored = scored.select("*", *columns).withColumn("prediction", F.col("prediction.prediction"))
    scored = scored.withColumn("model_version", F.lit(plan.version))
    if fmt == "csv":
        scored = scored.mapInPandas(neutral_frames, schema=scored.schema)
    writer = scored.write.mode("errorifexists")
    writer.parquet(str(job.output)) if fmt == "parquet" else writer.option("header", True).csv(str(job.output))
    written = spark.read.parquet(str(job.output)) if fmt == "parquet" else spark.read.option("header", True).csv(str(job.output))
    return written.count()


# pyspark 4 warns of pandas 3 on import, though every column this command reads or writes is checked by the
# suite (tests/e2e/test_batch_scoring.py) on pandas 3; as a PYTHONWARNINGS filter, for its Python workers too.
PANDAS_3_NOTICE = "ignore:PySpark does not yet fully support pandas:FutureWarning"


def _spark_session(session_class):
    """The job's own session (under spark-submit, as it was submitted), else a local one that this command
    starts: its Python workers run this interpreter, where the client and the registry are installed (not
    whichever ``python3`` comes first on PATH, which lacks pyarrow unless the venv is activated), unless
    PYSPARK_PYTHON names another; and its log says errors only (Spark logs a glob input's "no metadata
    directory" as a warning with a Java stack trace)."""
    if os.environ.get("PYSPARK_GATEWAY_PORT") or session_class.getActiveSession() is not None:
        return session_class.builder.getOrCreate()
    # pyspark takes the workers' Python from this variable when the session starts (not from spark.pyspark.python)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYTHONWARNINGS", PANDAS_3_NOTICE)  # the workers' pyspark says it too
    spark = progress.spark_console(session_class.builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


ENGINE_RUNS = {"local": _score_local, "dask": _score_dask, "spark": _score_spark}



def _input_files(patterns: tuple[str, ...]) -> list[str]:
    files = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if not found:
            raise TrainerError(f"--input {pattern!r} matches no file")
        files += found
    return files


def _format_of(files: list[str]) -> str:
    formats = {Path(file).suffix.lstrip(".").lower() for file in files}
    if len(formats) != 1 or not formats <= set(FORMATS):
        raise ConfigurationError(f"the inputs must all be .parquet or all .csv files, got {sorted(formats)}")
    return formats.pop()


def _check_output(output: Path) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise TrainerError(f"--output {str(output)!r} exists and is not an empty directory; name a new one")


def _record(client: RegistryClient, plan: Plan, job: ScoringJob, rows: int, started: datetime,
            status: str, detail: str):
    outputs = [str(job.output)] if status == "succeeded" else []
    return client.record_batch_run(plan, engine=job.engine, inputs=list(job.inputs), outputs=outputs, rows=rows,
                                   status=status, started_at=started, finished_at=datetime.now(timezone.utc),
                                   detail=detail)


def _reason(exc: BaseException) -> str:
    """The first line that names the bad row, from however deep an engine wrapped it."""
    text = str(exc)
    for line in text.splitlines():
        if "refused" in line:
            return line.strip().removeprefix("registry_client.batch.InvalidRows: ")
    return text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
