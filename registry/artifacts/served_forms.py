"""What predict calls for a version, written once per machine as plain arrays that every worker maps.

The first worker on a machine to load a version unpickles its artifact (through the restricted
unpickler) and writes the result here; every later load, in any worker, rebuilds it from this form
without unpickling anything: the object graph from ``form.json`` (classes named from an allow-list,
plain values inline), each array from its ``.npy`` file mapped read-only (``np.load(mmap_mode="r")``),
so N workers share one copy of a forest in the page cache.

``root/<aa>/<sha256>/`` is named by the artifact's sha256 and records the scikit-learn and NumPy
versions it was made with, so it never goes stale; a form made by other versions is made again.
A form is tied to its artifact: its manifest (``form.json``) names the artifact's sha256 and every
file's sha256, and is signed with a key of the server's (HMAC-SHA256, keyed from ``SECRET_KEY``), so a
form whose files were replaced, whose checksums were written anew, or that was copied from another
artifact's directory is never served: whenever a form is opened its signature, its artifact and every
file it maps are checked (each file hashed from the descriptor it is then mapped from), and one that
fails is removed and made again from the artifact. Nothing in the forms is reached through a
symbolic link. A mapped file written in place after it was checked is what ``MappedFile.written``
finds, so that the worker loads its version again (the walk itself never reads outside its records).
Forms are written into place by one rename (one worker writes while the others wait for it) and kept
within a byte budget, least recently used first, never one that an alias or a rollout serves.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import importlib
import importlib.metadata
import io
import json
import logging
import mmap
import os
import re
import secrets
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from registry.artifacts.disk_budget import Entry, over_budget
from registry.artifacts.no_follow import ensure_directory, locked, open_directory, open_regular
from registry.artifacts.store import is_artifact_name
from registry.inference.fast_boosting import CompiledBoosting
from registry.inference.fast_trees import CompiledTrees
from registry.inference.predictors import LinearPredictor, TreePredictor

log = logging.getLogger(__name__)

# 2: a bare linear model is its arrays; 3: trees as node records; 4: signed, tied to its artifact;
# 5: boosted models as wide node records (CompiledBoosting); 6: XGBoost's, summed in float32; 7: node covers;
# 8: categorical sets of several blocks, LightGBM's rows and links; 9: LightGBM's node counts as covers
FORMAT = 9
MANIFEST = "form.json"
INCOMING_PREFIX = ".incoming-"
_MAPPED_FROM_BYTES = 64 * 1024  # smaller arrays are read into memory: a mapping costs a page at least
_ARRAY_FILE = re.compile(r"[0-9]+\.npy")
# The registry's own classes: a form holding only these (and arrays) is rebuilt without scikit-learn.
_OWN_CLASSES = {f"{cls.__module__}:{cls.__qualname__}": cls for cls in (TreePredictor, LinearPredictor, CompiledTrees,
                                                                          CompiledBoosting)}


class NotStorable(Exception):
    """The object graph holds something a form cannot hold (it is then served as loaded, per worker)."""


class MappedFile:
    """A file a form's array is mapped from, held open (closed with this object) so that a write to it is
    seen wherever its name goes."""

    def __init__(self, name: str, fd: int):
        self.name = name
        self._fd = fd
        found = os.fstat(fd)
        self._checked = (found.st_size, found.st_mtime_ns, found.st_ctime_ns)
        weakref.finalize(self, os.close, fd)

    def written(self) -> bool:
        """True when the file was written since it was checked: the mapping no longer reads what was checked.
        A file taken out of the forms (removed, its change time moved by that alone) was not."""
        now = os.fstat(self._fd)
        found = (now.st_size, now.st_mtime_ns, now.st_ctime_ns)
        return found[:2] != self._checked[:2] if now.st_nlink == 0 else found != self._checked


@dataclass(frozen=True)
class Form:
    """A form rebuilt from its files: the values written, how many bytes of them are mapped, and the files
    they are mapped from."""

    values: dict
    mapped_bytes: int
    mapped_from: tuple[MappedFile, ...] = ()


class ServedForms:
    """Forms under ``root``, at most ``budget_bytes`` of them but for the digests ``serving()`` names.

    ``key`` (bytes, or what gives them at first use) signs the forms: servers with the same key share
    them (a replica's workers; its restarts). Without one, a random key: forms of this object alone.
    """

    def __init__(self, root: str | os.PathLike, *, budget_bytes: int, serving: Callable[[], set[str]] = set,
                 key: bytes | Callable[[], bytes] | None = None):
        self.root = Path(root)
        self.budget_bytes = budget_bytes
        self._serving = serving
        self._key_source = key
        self._key: bytes | None = None
        # Bytes this process wrote since it last looked at the whole directory (a walk over every form):
        # it looks again once they reach a sixteenth of the budget, and at its first write.
        self._written_unchecked: int | None = None

    def path_for(self, sha256: str) -> Path:
        """The directory of this digest's form."""
        return self.root / sha256[:2] / sha256

    def open(self, sha256: str) -> Form | None:
        """The form for ``sha256``, rebuilt with its arrays mapped; None when there is none usable
        (missing, damaged, not signed with this server's key, made from another artifact or by other
        library versions, or a link; an unusable one is removed)."""
        path = self.path_for(sha256)
        try:
            folder = _open_form(self.root, sha256)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return self._unusable(path, f"it is not a directory of its own ({exc.strerror})")
        try:
            return self._opened(path, folder, sha256)
        finally:
            os.close(folder)

    def _opened(self, path: Path, folder: int, sha256: str) -> Form | None:
        try:
            manifest = self._manifest(folder, sha256)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            return self._unusable(path, f"its {MANIFEST} cannot be used ({exc})")
        if manifest.get("made_with") != _made_with():
            return self._unusable(path, f"it was made with {manifest.get('made_with')}, not {_made_with()}")
        try:
            arrays, mapped_from = {}, []
            for name, entry in manifest["files"].items():
                arrays[name], mapped_file = _mapped(folder, name, entry)
                mapped_from.extend([mapped_file] if mapped_file is not None else [])
            values = _rebuilt(manifest["values"], arrays)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            return self._unusable(path, str(exc))
        os.utime(MANIFEST, dir_fd=folder, follow_symlinks=False)
        mapped = sum(e["bytes"] for e in manifest["files"].values() if e["bytes"] >= _MAPPED_FROM_BYTES)
        return Form(values, mapped, tuple(mapped_from))

    def _manifest(self, folder: int, sha256: str) -> dict:
        """The form's manifest, once its signature and its artifact check out (ValueError if not)."""
        with os.fdopen(open_regular(MANIFEST, dir_fd=folder), "rb") as f:
            signed = json.loads(f.read())
        text = signed["manifest"]
        if not isinstance(text, str) or not hmac.compare_digest(str(signed["hmac"]), self._signature(text)):
            raise ValueError("it is not signed with this server's key (SECRET_KEY)")
        manifest = json.loads(text)
        if manifest.get("artifact") != sha256:
            raise ValueError(f"it was made from the artifact {manifest.get('artifact')}, not this one")
        return manifest

    def _signature(self, text: str) -> str:
        if self._key is None:
            source = self._key_source() if callable(self._key_source) else self._key_source
            self._key = hmac.digest(source, b"served forms", "sha256") if source else secrets.token_bytes(32)
        return hmac.new(self._key, text.encode(), "sha256").hexdigest()

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
        going = over_budget(self._forms(), self.budget_bytes, lambda: set(keep) | self._serving())
        for form in going:
            _remove(self.path_for(form.sha256))
        return [form.sha256 for form in going]

    def usage(self) -> tuple[int, int]:
        """How many forms are here, and their bytes."""
        sizes = [form.size for form in self._forms()]
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
        ensure_directory(self.root)
        ensure_directory(path.parent)
        incoming = Path(tempfile.mkdtemp(dir=path.parent, prefix=INCOMING_PREFIX))
        try:
            files = {name: _saved(incoming / name, array) for name, array in arrays.items()}
            manifest = {"format": FORMAT, "artifact": sha256, "made_with": _made_with(), "files": files, "values": flat}
            text = json.dumps(manifest)
            (incoming / MANIFEST).write_text(json.dumps({"hmac": self._signature(text), "manifest": text}))
            if os.path.lexists(path):
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

    def _forms(self) -> Iterator[Entry]:
        if not self.root.is_dir():
            return
        for shelf in os.scandir(self.root):
            if len(shelf.name) != 2 or not shelf.is_dir(follow_symlinks=False):
                continue
            for form in os.scandir(shelf.path):
                if not is_artifact_name(form.name) or not form.is_dir(follow_symlinks=False):
                    continue
                try:
                    used = os.lstat(Path(form.path) / MANIFEST).st_mtime
                    size = sum(entry.stat(follow_symlinks=False).st_size for entry in os.scandir(form.path))
                except FileNotFoundError:
                    continue
                yield Entry(form.name, size, used)

    def _locked(self, sha256: str) -> AbstractContextManager:
        ensure_directory(self.root)
        return locked(self.root / "locks", f"{sha256}.lock")


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


def _open_form(root: Path, sha256: str) -> int:
    """A descriptor of the form's directory, reached through no link below ``root``."""
    shelf = open_directory(root / sha256[:2])
    try:
        return open_directory(sha256, dir_fd=shelf)
    finally:
        os.close(shelf)


def _remove(path: Path) -> None:
    """Take a form out of its place at once (a rename), then delete it; mappings of it stay valid.
    A link in a form's place goes, never what it points to."""
    trash = path.with_name(f"{INCOMING_PREFIX}{path.name}-{os.getpid()}-{id(path)}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return
    if trash.is_symlink():
        trash.unlink()
    else:
        shutil.rmtree(trash, ignore_errors=True)


def _saved(path: Path, array: np.ndarray) -> dict:
    """Write ``array``, read-only for everyone (nothing writes a form's file in place); its manifest entry."""
    np.save(path, array, allow_pickle=False)
    path.chmod(0o444)
    with open(path, "rb") as f:
        return {"sha256": _sha256(f), "bytes": os.fstat(f.fileno()).st_size}


def _sha256(f) -> str:
    size = os.fstat(f.fileno()).st_size
    if not size:
        return hashlib.sha256().hexdigest()
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        return hashlib.sha256(view).hexdigest()


def _mapped(folder: int, name: str, entry: dict) -> tuple[np.ndarray, MappedFile | None]:
    """The array in the form's file ``name``, mapped read-only (read into memory when small) from the very
    descriptor its bytes were checked from; and, when mapped, that file as it was checked."""
    if not _ARRAY_FILE.fullmatch(name):
        raise ValueError(f"{name!r} is not the name of a form's file")
    with os.fdopen(open_regular(name, dir_fd=folder), "rb") as f:
        checked = MappedFile(name, os.dup(f.fileno()))  # before the bytes are: a write meanwhile shows
        if os.fstat(f.fileno()).st_size != entry["bytes"] or _sha256(f) != entry["sha256"]:
            raise ValueError(f"{name} is damaged: its size or sha256 is not what was written")
        if entry["bytes"] < _MAPPED_FROM_BYTES:
            return np.load(io.BytesIO(f.read()), allow_pickle=False), None
        return np.asarray(_memmap(f)), checked


def _memmap(f) -> np.memmap:
    """The array of the ``.npy`` file open in ``f``, mapped read-only."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"an .npy file of version {version}")
    if dtype.hasobject:
        raise ValueError("an array of objects")
    return np.memmap(f, dtype=dtype, mode="r", offset=f.tell(), shape=shape, order="F" if fortran_order else "C")


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
    tag, content = next(iter(flat.items()), ("", None))  # an empty record is an unknown tag
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
