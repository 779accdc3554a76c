"""What predict calls for a version, written once per machine as plain arrays that every worker maps.

The first worker on a machine to load a version unpickles its artifact (through the restricted
unpickler) and writes the result here; every later load, in any worker, rebuilds it from this form
without unpickling anything: the object graph from ``form.json`` (classes named from an allow-list,
plain values inline), each array from its ``.npy`` file mapped read-only (``np.load(mmap_mode="r")``),
so N workers share one copy of a forest in the page cache.

``root/<aa>/<sha256>/`` is named by the artifact's sha256 and records the scikit-learn and NumPy
versions it was made with, so it never goes stale; a form made by other versions is made again.
Every file's CRC-32 is in ``form.json`` and checked whenever it is mapped: a damaged or missing
file is never served, the form is removed and made again from the artifact. Forms are written into
place by one rename (one worker writes while the others wait for it) and kept within a byte budget,
least recently used first, never one that an alias or a rollout serves.
"""
from __future__ import annotations

import fcntl
import functools
import importlib
import importlib.metadata
import json
import logging
import mmap
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from registry.artifacts.store import is_artifact_name
from registry.serving.fast_trees import CompiledTrees
from registry.serving.predictors import LinearPredictor, TreePredictor

log = logging.getLogger(__name__)

FORMAT = 3  # 2: a bare linear model is its arrays, with no scikit-learn object; 3: trees as node records
MANIFEST = "form.json"
INCOMING_PREFIX = ".incoming-"
_MAPPED_FROM_BYTES = 64 * 1024  # smaller arrays are read into memory: a mapping costs a page at least
# The registry's own classes: a form holding only these (and arrays) is rebuilt without scikit-learn.
_OWN_CLASSES = {f"{cls.__module__}:{cls.__qualname__}": cls for cls in (TreePredictor, LinearPredictor, CompiledTrees)}


class NotStorable(Exception):
    """The object graph holds something a form cannot hold (it is then served as loaded, per worker)."""


@dataclass(frozen=True)
class Form:
    """A form rebuilt from its files: the values written, and how many bytes of them are mapped."""

    values: dict
    mapped_bytes: int


class ServedForms:
    """Forms under ``root``, at most ``budget_bytes`` of them but for the digests ``serving()`` names."""

    def __init__(self, root: str | os.PathLike, *, budget_bytes: int, serving: Callable[[], set[str]] = set):
        self.root = Path(root)
        self.budget_bytes = budget_bytes
        self._serving = serving
        # Bytes this process wrote since it last looked at the whole directory (a walk over every form):
        # it looks again once they reach a sixteenth of the budget, and at its first write.
        self._written_unchecked: int | None = None

    def path_for(self, sha256: str) -> Path:
        """The directory of this digest's form."""
        return self.root / sha256[:2] / sha256

    def open(self, sha256: str) -> Form | None:
        """The form for ``sha256``, rebuilt with its arrays mapped; None when there is none usable
        (missing, damaged or made by other library versions; a damaged one is removed)."""
        path = self.path_for(sha256)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return self._unusable(path, f"its {MANIFEST} cannot be read ({exc})")
        if manifest.get("made_with") != _made_with():
            return self._unusable(path, f"it was made with {manifest.get('made_with')}, not {_made_with()}")
        try:
            arrays = {name: _mapped(path / name, entry) for name, entry in manifest["files"].items()}
            values = _rebuilt(manifest["values"], arrays)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return self._unusable(path, str(exc))
        os.utime(path / MANIFEST)
        mapped = sum(e["bytes"] for e in manifest["files"].values() if e["bytes"] >= _MAPPED_FROM_BYTES)
        return Form(values, mapped)

    def make(self, sha256: str, build: Callable[[], dict]) -> Form | None:
        """The form for ``sha256``: opened if one is here, else ``build()`` (the values to store) written
        by this process while others wait, then opened. None when the values cannot be stored."""
        form = self.open(sha256)
        if form is not None:
            return form
        with self._locked(sha256):
            form = self.open(sha256)  # another worker wrote it while this one waited
            if form is not None:
                return form
            try:
                written = self._write(sha256, build())
            except NotStorable as exc:
                log.info("version with artifact %s is served as loaded, one copy per worker: %s", sha256, exc)
                return None
        self._prune_now_and_then(written, keep={sha256})
        return self.open(sha256)

    def prune(self, keep: set[str] = frozenset()) -> list[str]:
        """Remove least recently used forms until they fit the budget; never ``keep`` nor what is served."""
        forms = sorted(self._forms(), key=lambda f: f[2])
        total = sum(size for _, size, _ in forms)
        if total <= self.budget_bytes:
            return []
        kept = set(keep) | self._serving()
        removed = []
        for path, size, _ in forms:
            if total <= self.budget_bytes:
                break
            if path.name not in kept:
                _remove(path)
                total -= size
                removed.append(path.name)
        return removed

    def usage(self) -> tuple[int, int]:
        """How many forms are here, and their bytes."""
        sizes = [size for _, size, _ in self._forms()]
        return len(sizes), sum(sizes)

    def _prune_now_and_then(self, written: int, keep: set[str]) -> None:
        if self._written_unchecked is not None:
            self._written_unchecked += written
            if self._written_unchecked < self.budget_bytes / 16:
                return
        self._written_unchecked = 0
        self.prune(keep)

    def _write(self, sha256: str, values: dict) -> int:
        """Write the form into place; returns its size in bytes."""
        arrays: dict[str, np.ndarray] = {}
        flat = _flattened(values, arrays)
        path = self.path_for(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        incoming = Path(tempfile.mkdtemp(dir=path.parent, prefix=INCOMING_PREFIX))
        try:
            files = {name: _saved(incoming / name, array) for name, array in arrays.items()}
            manifest = {"format": FORMAT, "made_with": _made_with(), "files": files, "values": flat}
            text = json.dumps(manifest)
            (incoming / MANIFEST).write_text(text)
            if path.exists():
                _remove(path)
            incoming.rename(path)
            return len(text) + sum(entry["bytes"] for entry in files.values())
        finally:
            if incoming.exists():
                shutil.rmtree(incoming, ignore_errors=True)

    def _unusable(self, path: Path, why: str) -> None:
        log.warning("the served form in %s is not used and will be made again: %s", path, why)
        _remove(path)
        return None

    def _forms(self) -> Iterator[tuple[Path, int, float]]:
        if not self.root.is_dir():
            return
        for shelf in self.root.iterdir():
            if len(shelf.name) != 2 or not shelf.is_dir():
                continue
            for form in shelf.iterdir():
                if not is_artifact_name(form.name):
                    continue
                try:
                    used = (form / MANIFEST).stat().st_mtime
                    size = sum(entry.stat().st_size for entry in os.scandir(form))
                except FileNotFoundError:
                    continue
                yield form, size, used

    @contextmanager
    def _locked(self, sha256: str) -> Iterator[None]:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{sha256}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


@functools.cache
def _made_with() -> dict:
    # The installed version, read without importing scikit-learn (a second of a worker's start).
    return {"format": FORMAT, "scikit-learn": importlib.metadata.version("scikit-learn"), "numpy": np.__version__}


def _class_named(name: str) -> type | None:
    """The allow-listed class ``name`` (``module:qualname``); scikit-learn is imported only for one of its own."""
    return _OWN_CLASSES.get(name) or _allowed_classes().get(name)


@functools.cache
def _allowed_classes() -> dict[str, type]:
    from registry.artifacts.loading.allowed import ESTIMATOR_CLASSES

    return {f"{cls.__module__}:{cls.__qualname__}": cls for cls in ESTIMATOR_CLASSES}


@functools.cache
def _allowed_types() -> frozenset[str]:
    from registry.artifacts.loading.allowed import ALLOWED_GLOBALS, NUMPY_SCALARS

    return frozenset({f"{module}:{name}" for module, name in ALLOWED_GLOBALS}
                     | {f"{cls.__module__}:{cls.__qualname__}" for cls in NUMPY_SCALARS})


def _remove(path: Path) -> None:
    """Take a form out of its place at once (a rename), then delete it; mappings of it stay valid."""
    trash = path.with_name(f"{INCOMING_PREFIX}{path.name}-{os.getpid()}-{id(path)}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _saved(path: Path, array: np.ndarray) -> dict:
    np.save(path, array, allow_pickle=False)
    with open(path, "rb") as f:
        return {"crc32": _crc32(f), "bytes": os.fstat(f.fileno()).st_size}


def _crc32(f) -> int:
    size = os.fstat(f.fileno()).st_size
    if not size:
        return 0
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        return zlib.crc32(view)


def _mapped(path: Path, entry: dict) -> np.ndarray:
    """The array in ``path``, mapped read-only (read into memory when small), once its bytes check out."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size != entry["bytes"] or _crc32(f) != entry["crc32"]:
            raise ValueError(f"{path.name} is damaged: its size or CRC-32 is not what was written")
    if entry["bytes"] < _MAPPED_FROM_BYTES:
        return np.load(path, allow_pickle=False)
    return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))


def _flattened(value, arrays: dict[str, np.ndarray]):
    """``value`` as JSON, its non-object arrays moved into ``arrays`` (named by file); NotStorable else.

    Every JSON object in the result is a tag saying what it stands for, so nothing read back is ambiguous.
    """
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, np.generic):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            if value.dtype != object:
                raise NotStorable(f"an array of dtype {value.dtype}")
            return {"objects": [_flattened(item, arrays) for item in value.ravel()], "shape": list(value.shape)}
        name = f"{len(arrays)}.npy"
        arrays[name] = value
        return {"array": name}
    if isinstance(value, np.generic):
        return {"scalar": _flattened(value.item(), arrays), "dtype": value.dtype.str}
    if isinstance(value, np.dtype):
        return {"dtype": value.str}
    if isinstance(value, list):
        return [_flattened(item, arrays) for item in value]
    if isinstance(value, tuple):
        return {"tuple": [_flattened(item, arrays) for item in value]}
    if isinstance(value, dict):
        return {"dict": [[_flattened(k, arrays), _flattened(v, arrays)] for k, v in value.items()]}
    if isinstance(value, slice):
        return {"slice": [_flattened(value.start, arrays), _flattened(value.stop, arrays), _flattened(value.step, arrays)]}
    if isinstance(value, type):
        name = f"{value.__module__}:{value.__qualname__}"
        if name not in _allowed_types():
            raise NotStorable(f"the type {name}")
        return {"type": name}
    name = f"{type(value).__module__}:{type(value).__qualname__}"
    if _class_named(name) is not type(value):
        raise NotStorable(f"an object of class {name}")
    state = value.__getstate__()
    if not isinstance(state, dict):
        raise NotStorable(f"the state of {name}")
    return {"object": name, "state": _flattened(state, arrays)}


def _rebuilt(flat, arrays: dict[str, np.ndarray]):
    """The value ``_flattened`` stored, built from allow-listed classes and the given arrays."""
    if isinstance(flat, list):
        return [_rebuilt(item, arrays) for item in flat]
    if not isinstance(flat, dict):
        return flat
    tag, content = next(iter(flat.items()))
    if tag == "array":
        return arrays[content]
    if tag == "objects":
        built = np.empty(len(content), dtype=object)
        built[:] = [_rebuilt(item, arrays) for item in content]
        return built.reshape(flat["shape"])
    if tag == "scalar":
        return np.dtype(flat["dtype"]).type(_rebuilt(content, arrays))
    if tag == "dtype":
        return np.dtype(content)
    if tag == "tuple":
        return tuple(_rebuilt(item, arrays) for item in content)
    if tag == "dict":
        return {_rebuilt(k, arrays): _rebuilt(v, arrays) for k, v in content}
    if tag == "slice":
        return slice(*(_rebuilt(part, arrays) for part in content))
    if tag == "type":
        if content not in _allowed_types():
            raise ValueError(f"the type {content} is not allowed")
        module, _, name = content.partition(":")
        return _named_type(module, name)
    if tag == "object":
        cls = _class_named(content)
        if cls is None:
            raise ValueError(f"the class {content} is not allowed")
        obj = cls.__new__(cls)
        state = _rebuilt(flat["state"], arrays)
        if hasattr(obj, "__setstate__"):
            obj.__setstate__(state)
        else:
            obj.__dict__.update(state)
        return obj
    raise ValueError(f"unknown tag {tag!r}")


def _named_type(module: str, name: str) -> type:
    found = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    if not isinstance(found, type):
        raise ValueError(f"{module}:{name} is not a type")
    return found
