"""Reading skops files (``skops.io.dump``): a zip of a JSON schema and .npy arrays.

skops never unpickles, but it trusts every scikit-learn class by default and ``zipfile`` trusts
the sizes a zip announces. So the zip is first copied entry by entry, in bounded reads charged to
the Budget, into a fresh uncompressed zip; the schema is then checked against the one allow-list
before skops builds anything from it.
"""
from __future__ import annotations

import io
import json
import zipfile
from typing import BinaryIO

from numpy.lib import format as npy

from registry.artifacts.loading.allowed import SKOPS_TYPES, skops_trusted
from registry.artifacts.loading.checks import check_sklearn_version
from registry.artifacts.loading.limits import DOCS, Budget, array_bytes, too_many_objects
from registry.artifacts.supported_estimators import HISTOGRAM_BOOSTING, STAGED_BOOSTING
from registry.errors import InvalidArtifact, UnsafeArtifact

SCHEMA = "schema.json"
CHUNK_BYTES = 1024 * 1024
# A 500-tree forest has about 2,500 entries; each entry costs about 1 KB before it is read.
MAX_ENTRIES = 100_000
# bz2 and lzma entries would be decompressed without a bound on each read, so only these are read.
COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
# The node kinds a supported model is made of; functions, methods and partials are never loaded.
LOADERS = {
    "DictNode", "ListNode", "TupleNode", "SetNode", "JsonNode", "BytesNode", "SliceNode",
    "TypeNode", "ObjectNode", "NdArrayNode", "DTypeNode", "TreeNode", "CachedNode",
}


def load_skops(source: bytes | BinaryIO, budget: Budget) -> tuple[object, str | None]:
    """The object a skops file (its bytes, or a binary file) holds, and the scikit-learn version it names."""
    data = source if isinstance(source, bytes) else source.read()  # skops itself reads from bytes
    if data.count(b"PK\x01\x02") > MAX_ENTRIES:  # central directory records, counted before parsing
        raise too_many_objects(MAX_ENTRIES)
    copy = _bounded_copy(data, budget)
    with zipfile.ZipFile(io.BytesIO(copy)) as archive:
        if SCHEMA not in archive.namelist():
            raise InvalidArtifact(
                "artifact is a zip file without schema.json, so not a skops file: upload the file "
                "written by skops.io.dump(model, path) or joblib.dump(model, path)"
            )
        raw = archive.read(SCHEMA)
        _refuse_boosting(raw)
        # No JSON value without a comma or bracket before it: an upper bound before parsing.
        budget.count_objects(raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1)
        version = _check_schema(json.loads(raw), archive)
    import skops.io  # here, not at start: importing it walks every scikit-learn estimator (half a second)

    return skops.io.loads(copy, trusted=skops_trusted()), version


def _refuse_boosting(schema: bytes) -> None:
    """Boosted models hold losses, random generators and a partial that skops files are not read with."""
    for cls in (*HISTOGRAM_BOOSTING, *STAGED_BOOSTING):
        if b'"%s"' % cls.__name__.encode() in schema:
            raise InvalidArtifact(
                f"artifact is a skops file of a {cls.__name__}; boosted models are accepted as joblib or "
                "pickle files: upload the file written by joblib.dump(model, path)"
            )


def _bounded_copy(data: bytes, budget: Budget) -> bytes:
    """The zip's entries copied uncompressed, each read in chunks charged to ``budget``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        entries = source.infolist()
        budget.check(sum(entry.file_size for entry in entries))
        for entry in entries:
            if entry.compress_type not in COMPRESSIONS:
                raise InvalidArtifact(
                    f"artifact is a skops file with {entry.filename} compressed in a way this server "
                    "does not read: dump it with skops.io.dump's default compression"
                )
            with source.open(entry) as src, target.open(entry.filename, "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK_BYTES):
                    budget.charge(len(chunk))
                    dst.write(chunk)
    return out.getvalue()


def _check_schema(schema, archive: zipfile.ZipFile) -> str | None:
    """Refuse any node outside the allow-list; the scikit-learn version the estimators name."""
    version = None
    pending = [schema]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, dict):
            if "__loader__" in value:
                version = _check_node(value, archive) or version
            pending.extend(value.values())
    return version


def _check_node(node: dict, archive: zipfile.ZipFile) -> str | None:
    loader, module, name = node["__loader__"], node.get("__module__"), node.get("__class__")
    if (module, name) not in SKOPS_TYPES:
        raise UnsafeArtifact(
            f"artifact refers to {module}.{name}, which is not an allowed scikit-learn or NumPy "
            f"type; {DOCS} lists what a model file may hold"
        )
    if loader not in LOADERS:
        raise UnsafeArtifact(f"artifact holds a {loader} for {module}.{name}, which a model file never needs")
    if loader == "NdArrayNode" and node.get("type") == "numpy":
        _check_npy(archive, node.get("file"))
    content = node.get("content")
    state = content.get("content") if loader == "ObjectNode" and isinstance(content, dict) else None
    if not isinstance(state, dict):
        return None
    functions = (_json_value(state.get(key)) for key in ("func", "inverse_func"))
    if name == "FunctionTransformer" and any(function is not None for function in functions):
        raise UnsafeArtifact(
            "artifact holds a FunctionTransformer with a function, which cannot be loaded safely; "
            "only ColumnTransformer's 'passthrough' is accepted"
        )
    return check_sklearn_version(_json_value(state.get("_sklearn_version")))


def _json_value(node):
    """The value of a JsonNode (``None`` when absent); a marker object for any other node."""
    if node is None:
        return None
    if isinstance(node, dict) and node.get("__loader__") == "JsonNode":
        return json.loads(node.get("content", "null"))
    return node


# NumPy's public readers of an .npy header, by the format's version (3.0 is only for fields named in UTF-8).
_NPY_HEADER_READERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}


def _check_npy(archive: zipfile.ZipFile, name) -> None:
    """An .npy entry must hold exactly the bytes its header announces (no pickled objects)."""
    with archive.open(name) as entry:
        read_header = _NPY_HEADER_READERS.get(npy.read_magic(entry))
        if read_header is None:
            raise InvalidArtifact(f"artifact holds an array {name} in an .npy version other than 1.0 and 2.0, "
                                  "which numpy.save writes for a model's arrays")
        shape, _, dtype = read_header(entry)
        header_end = entry.tell()
    if dtype.hasobject or array_bytes(shape, dtype.itemsize) != archive.getinfo(name).file_size - header_end:
        raise InvalidArtifact(f"artifact holds an array {name} whose header does not match its data")
