"""What the prediction log's export writes to the lake: Parquet files of one schema, laid out hive style
(``model=<name>/day=YYYY-MM-DD/part-<first id>.parquet``), and each model's ``model=<name>/_manifest.json``,
which lists every file with its rows, first and last time, id range, versions, size and sha256.

Inputs, outputs, labels and explanations are the JSON text the log holds. Readers that list the folders
skip the manifest (a leading ``_``) and files being written (a leading ``.``).

Schema versions: 1 had no ``explanations``; 2 adds it as the last column. A reader that reads files of
both versions together gives :data:`SCHEMA` (``pyarrow.dataset.dataset(path, schema=SCHEMA)``), so that a
version 1 file's rows read with ``explanations`` null; without it, pyarrow takes the first file's schema.
"""
from __future__ import annotations

import hashlib
import io
import json

import pandas as pd
import pyarrow as pa

from registry.monitoring.lake import MANIFEST, Lake
from registry.tables import utcnow

SCHEMA_VERSION = 2

SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("request_id", pa.string()),
    ("version", pa.int64()),
    ("alias", pa.string()),
    ("route", pa.string()),
    ("inputs", pa.string()),  # JSON: the rows as the model saw them, in signature order
    ("outputs", pa.string()),  # JSON: predictions (probabilities, classes), or the error
    ("latency_ms", pa.float64()),
    ("status", pa.int64()),
    ("at", pa.timestamp("us", tz="UTC")),
    ("label", pa.string()),  # JSON: the label as it was at the export; null when none had come
    ("labelled_at", pa.timestamp("us", tz="UTC")),
    ("explanations", pa.string()),  # JSON: the rows' attributions when the model's log explained them; else null
])


def write_days(lake: Lake, name: str, frame: pd.DataFrame) -> list[dict]:
    """Write ``frame`` (rows of :data:`SCHEMA`, in id order) as one file per day; the manifest's entries of the files."""
    entries = []
    for day, part in frame.groupby(frame["at"].dt.strftime("%Y-%m-%d"), sort=True):
        data = _parquet(part)
        path = f"model={name}/day={day}/part-{int(part['id'].iloc[0]):019d}.parquet"
        lake.put(path, data)
        entries.append({
            "path": path, "day": day, "rows": len(part), "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "schema_version": SCHEMA_VERSION,
            "first_id": int(part["id"].iloc[0]), "last_id": int(part["id"].iloc[-1]),
            "first_at": _iso(part["at"].min()), "last_at": _iso(part["at"].max()),
            "versions": sorted(int(v) for v in part["version"].unique()),
            "exported_at": _iso(utcnow()),
        })
    return entries


def _parquet(part: pd.DataFrame) -> bytes:
    """``part`` as a Parquet file of :data:`SCHEMA` (through pandas, with pyarrow)."""
    out = io.BytesIO()
    part.to_parquet(out, engine="pyarrow", index=False, schema=SCHEMA, compression="zstd")
    return out.getvalue()


def add_to_manifest(lake: Lake, name: str, *, upto: int, entries: list[dict]) -> None:
    """Add ``entries`` to the model's manifest (replacing any of the same path: a step done again)."""
    key = f"model={name}/{MANIFEST}"
    found = lake.get(key)
    manifest = json.loads(found) if found is not None else {"files": []}
    paths = {entry["path"] for entry in entries}
    files = sorted([entry for entry in manifest["files"] if entry["path"] not in paths] + entries,
                   key=lambda entry: entry["first_id"])
    manifest = {"schema_version": SCHEMA_VERSION, "model": name, "exported_id": max(upto, manifest.get("exported_id", 0)),
                "rows": sum(entry["rows"] for entry in files), "files": files}
    lake.put(key, json.dumps(manifest, indent=1).encode())


def _iso(moment) -> str:
    return pd.Timestamp(moment).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
