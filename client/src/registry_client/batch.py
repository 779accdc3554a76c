"""Batch scoring: a version planned once, its artifact fetched once per machine, rows scored as the server scores them.

A job is planned with :func:`plan`: the reference (an alias or a number) is resolved there, once, and
every partition is scored by that version whatever the alias does meanwhile. Each machine fetches the
artifact once through the registry's download route into a local cache (checked against the sha256
the plan recorded, which is also the route's ETag), and each process loads it once with the
registry's own restricted loader and compiled predictor. Rows are checked against the signature by
the online route's own checks, so a row the server refuses fails the job naming it, and a row it
accepts gets its answer bit for bit.

Scoring needs the service's package (``registry``, with NumPy, scikit-learn and pandas): the
``batch`` extra installs it. It is imported only when a partition is scored, so this module, like
the rest of the client, imports requests alone.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_client.errors import RegistryError
from registry_client.transport import DEFAULT_RETRIES, DEFAULT_TIMEOUT, Transport, path

CACHE_VARIABLE = "REGISTRY_CACHE_DIR"
VERSION_COLUMN = "model_version"
PREDICTION_COLUMN = "prediction"
CHUNK_BYTES = 1 << 20
_LOADED: dict[str, Any] = {}  # sha256 -> the version loaded in this process


class InvalidRows(RegistryError):
    """Rows of a batch the version's signature refuses, as the online route would: names the first bad ones."""


@dataclass(frozen=True)
class Plan:
    """One version of one model, resolved when the job was planned: all an executor needs to score with it."""

    url: str
    token: str | None
    model: str
    version: int
    alias: str | None  # the alias it was resolved from (None: asked for by number)
    sha256: str
    size_bytes: int
    task: str
    kind: str
    signature: dict
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    cache_dir: str | None = None  # where each machine keeps artifacts (else $REGISTRY_CACHE_DIR, else ~/.cache)

    def __dask_tokenize__(self) -> tuple:
        """What tells one plan from another to Dask, which names a job's tasks by their arguments: the version's
        artifact and where it comes from (the signature and the rest follow from them), not all the fields."""
        return ("registry_client.Plan", self.url, self.model, self.version, self.alias, self.sha256, self.cache_dir)

    @property
    def features(self) -> list[str]:
        """The feature names, in signature order."""
        return [feature["name"] for feature in self.signature.get("features", [])]

    @property
    def classes(self) -> list:
        """A classifier's classes, in the order of its probabilities."""
        return list(self.signature.get("classes") or [])


def plan(transport: Transport, model: str, ref: int | str, *, cache_dir: str | None = None) -> Plan:
    """Resolve ``ref`` of ``model`` now, once: the plan every partition of the job is scored by. An archived
    version is refused (410, as the predict route refuses it): its answers are not to be used."""
    body = transport.json("GET", path("models", model, "versions", ref))
    if body.get("status") == "archived":
        raise RegistryError(f"{model} v{body['version']} is archived: score with a ready version or an alias", 410)
    alias = None if isinstance(ref, int) or str(ref).isdigit() else str(ref)
    return Plan(url=transport.base_url, token=transport.token, model=model, version=body["version"], alias=alias,
                sha256=body["sha256"], size_bytes=body["size_bytes"], task=body["task"], kind=body["kind"],
                signature=body["signature"], timeout=transport.timeout, retries=transport.retries,
                cache_dir=cache_dir)


def cached_artifact(job: Plan, cache_dir: str | Path | None = None) -> Path:
    """The artifact's file in this machine's cache, fetched through the download route by the first
    process that needs it (the others wait on its lock), and checked against the planned sha256."""
    root = Path(cache_dir or job.cache_dir or os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "registry-client")
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{job.sha256}.artifact"
    with open(root / f"{job.sha256}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and _sha256_of(target) == job.sha256:
            return target
        _download(job, target)
    return target


def loaded(job: Plan, cache_dir: str | Path | None = None):
    """The planned version loaded in this process (once) by the registry's own restricted loader."""
    model = _LOADED.get(job.sha256)
    if model is None:
        from registry.facts import VersionInfo
        from registry.serving.offline import load_version

        data = cached_artifact(job, cache_dir).read_bytes()
        if hashlib.sha256(data).hexdigest() != job.sha256:
            raise RegistryError(f"the cached artifact of {job.model} v{job.version} does not match its sha256")
        info = VersionInfo(job.model, job.version, job.sha256, job.task, job.signature, kind=job.kind)
        model = _LOADED[job.sha256] = load_version(data, info, max_model_bytes=max(job.size_bytes * 64, 1 << 30))
    return model


def score_frame(job: Plan, frame, *, proba: bool = False, where: str = "", first_row: int = 0, text: bool = False):
    """``frame``'s predictions (a pandas DataFrame: ``prediction``, a ``probability_<class>`` per class
    with ``proba``, and ``model_version``), its index kept; rows the signature refuses raise InvalidRows
    naming ``where`` and the first bad row (rows numbered from ``first_row``). With ``text`` the
    features are a CSV file's cells, read as text and parsed as the CSV predict route parses them."""
    import numpy as np
    import pandas as pd

    if len(frame) == 0:
        return empty_scores(job, proba=proba)
    answer = frame_answer(job, frame, proba=proba, where=where, first_row=first_row, text=text)
    # The model's arrays, as the predict route answers them, put side by side uncopied: one frame made of all
    # the columns would copy the probabilities out of their matrix column by column (6.7 ms of 250,000 rows).
    parts = [pd.Series(answer.predictions, index=frame.index, name=PREDICTION_COLUMN, copy=False)]
    if proba:
        parts.append(pd.DataFrame(answer.probabilities, columns=probability_columns(job), index=frame.index,
                                  copy=False))
    version = np.full(len(frame), job.version, dtype=np.int64)
    parts.append(pd.Series(version, index=frame.index, name=VERSION_COLUMN, copy=False))
    return pd.concat(parts, axis=1)


def frame_answer(job: Plan, frame, *, proba: bool, where: str, first_row: int, text: bool):
    """The version's answer (``predictions``, and ``probabilities`` with ``proba``: the model's arrays) for the
    rows of a non-empty pandas ``frame``, checked as the online route checks them (see :func:`score_frame`)."""
    import numpy as np

    from registry.serving.offline import score_columns, score_matrix

    columns = [name for name in job.features if name in frame.columns]
    with _refused(job, where):
        model = loaded(job)
        dtypes = dict(zip(frame.columns, frame.dtypes))
        if not text and _numbers_only(model, dtypes, columns):  # what the JSON route makes of these numbers, at once
            if all(isinstance(dtypes[name], np.dtype) for name in columns):
                # NumPy's own columns (a NaN is refused) made one C-ordered matrix by reading across them: writing
                # each column down the matrix in turn took twice as long
                chosen = frame if list(frame.columns) == columns else frame[columns]
                matrix = np.ascontiguousarray(chosen.to_numpy(dtype=np.float64))
                return score_matrix(model, matrix, proba=proba, first_row=first_row)
            # a nullable column's NA is NaN, and is refused
            return _matrix_answer(model, [frame[name].to_numpy(dtype="float64", na_value=np.nan) for name in columns],
                                  proba, first_row)
        data = [list(row) for row in zip(*(frame[name].tolist() for name in columns))]
        return score_columns(model, columns, data, proba=proba, first_row=first_row, text=text)


def arrow_answer(job: Plan, arrays: list, *, proba: bool = False, where: str = "", first_row: int = 0,
                 text: bool = False):
    """:func:`frame_answer` for one pyarrow array per feature (in the plan's order, as long as each other): numbers
    go to the model as one matrix, with no pandas frame made; text and anything else as a frame would."""
    import pyarrow as pa

    with _refused(job, where):
        model = loaded(job)
        numbers = all(pa.types.is_integer(array.type) or pa.types.is_floating(array.type) for array in arrays)
        if not text and numbers and model.signature.all_numeric and len(arrays) == len(model.signature.names):
            # a null is NaN, as it is in a pandas frame, and is refused
            return _matrix_answer(model, [array.to_numpy(zero_copy_only=False) for array in arrays], proba, first_row)
    import pandas as pd

    frame = pd.DataFrame({name: array.to_pandas() for name, array in zip(job.features, arrays)})
    return frame_answer(job, frame, proba=proba, where=where, first_row=first_row, text=text)


def _matrix_answer(model, columns: list, proba: bool, first_row: int):
    """The answer for numeric ``columns`` (arrays of one length), made one float64 matrix in C order, as the JSON
    route builds its rows: the BLAS of a linear model may sum otherwise for another layout."""
    import numpy as np

    from registry.serving.offline import score_matrix

    matrix = np.empty((len(columns[0]), len(columns)))
    for j, column in enumerate(columns):
        matrix[:, j] = column
    return score_matrix(model, matrix, proba=proba, first_row=first_row)


@contextmanager
def _refused(job: Plan, where: str):
    """Rows the signature refuses, raised as InvalidRows naming the job's model, version and ``where``."""
    from registry.errors import InvalidInput

    try:
        yield
    except InvalidInput as exc:
        prefix = f"{where}: " if where else ""
        raise InvalidRows(f"{job.model} v{job.version} refused {prefix}{exc.detail}", 422,
                          {"detail": f"{prefix}{exc.detail}", "errors": exc.errors}) from None


def _numbers_only(model, dtypes: dict, columns: list[str]) -> bool:
    """Whether every feature is numeric, present, and held as float or integer numbers (never booleans,
    which the JSON route refuses, nor objects, whose every cell it checks); ``dtypes`` maps the frame's
    columns to their types."""
    return (model.signature.all_numeric and columns == model.signature.names
            and all(dtypes[name].kind in "fiu" for name in columns))


def probability_columns(job: Plan) -> list[str]:
    """The columns of a classifier's probabilities, one per class in the signature's order."""
    return [f"probability_{label}" for label in job.classes]


def empty_scores(job: Plan, *, proba: bool):
    """An empty frame of scores with the columns and types :func:`score_frame` gives."""
    import pandas as pd

    columns = {PREDICTION_COLUMN: pd.Series(dtype=prediction_dtype(job))}
    if proba:
        columns.update({name: pd.Series(dtype="float64") for name in probability_columns(job)})
    columns[VERSION_COLUMN] = pd.Series(dtype="int64")
    return pd.DataFrame(columns)


def prediction_dtype(job: Plan) -> str:
    """The type of the predictions: float64 for a regressor, its classes' type for a classifier (text: the
    string dtype pandas gives a column of Python strings)."""
    classes = job.classes
    if job.task != "classification" or not classes:
        return "float64"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "int64"
    return "float64" if all(isinstance(c, (int, float)) for c in classes) else "str"


def neutral_frame(frame):
    """``frame`` (pandas) as it is written to CSV: every text cell through the registry's one rule for CSV
    cells (``registry.csv_cells.neutral``, which its HTTP CSV exports follow), so that no cell opens as a
    formula in a spreadsheet; numbers, and text that is a plain number, as they are."""
    import pandas as pd

    from registry.csv_cells import neutral

    text = [name for name, dtype in frame.dtypes.items()
            if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)]
    if not text:
        return frame
    frame = frame.copy(deep=False)
    for name in text:
        frame[name] = frame[name].map(neutral).astype(frame[name].dtype)
    return frame


def neutral_frames(frames):
    """:func:`neutral_frame` over an iterator of frames (Spark's ``mapInPandas``)."""
    for frame in frames:
        yield neutral_frame(frame)


def _download(job: Plan, target: Path) -> None:
    http = Transport(job.url, job.token, job.timeout, job.retries)
    response = http.send("GET", path("models", job.model, "versions", job.version, "artifact"), stream=True)
    etag = response.headers.get("ETag", "").strip('"')
    if etag and etag != job.sha256:
        raise RegistryError(f"the registry sent {job.model} v{job.version} with ETag {etag}, not the planned "
                            f"sha256 {job.sha256}", response.status_code)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".download-", delete=False) as part:
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                digest.update(chunk)
                part.write(chunk)
            part.flush()
            os.fsync(part.fileno())
            if digest.hexdigest() != job.sha256:
                raise RegistryError(f"the artifact of {job.model} v{job.version} does not match its sha256")
            os.replace(part.name, target)
        except BaseException:
            os.unlink(part.name)
            raise


def _sha256_of(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
