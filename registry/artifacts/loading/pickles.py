"""The restricted unpicklers for joblib and pickle files.

A pickle can call anything it can name. These unpicklers name only the allow-list, refuse the few
pickle moves a real model file never makes, and charge what they build to a Budget: every step
counts as an object, every byte read from the (decompressed) stream counts, and every size a file
announces is checked before it is allocated.
"""
from __future__ import annotations

import contextlib
import functools
import io
import pickle
import struct
import zlib
from types import BuiltinFunctionType, FunctionType
from typing import BinaryIO

import numpy as np
from joblib import compressor
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from numpy._core.multiarray import _reconstruct
from sklearn.base import BaseEstimator
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree._tree import Tree

from registry.artifacts.loading.allowed import ALLOWED_GLOBALS, OLD_PROTOCOL_GLOBALS
from registry.artifacts.loading.checks import (
    check_constructor_call,
    check_partial_state,
    check_passthrough,
    check_sklearn_version,
)
from registry.artifacts.loading.limits import DOCS, BoundedStream, Budget, array_bytes, too_many_objects
from registry.errors import InvalidArtifact, UnsafeArtifact


def unpickle(source: bytes | BinaryIO, budget: Budget) -> tuple[object, str | None]:
    """The object a joblib or pickle file (its bytes, or a binary file) holds, and the scikit-learn
    version it names."""
    raw = io.BytesIO(source) if isinstance(source, bytes) else source
    compression = _compression(raw)
    if compression is not None:
        _check_stream_ends_with_file(raw, compression, budget)
    opened = contextlib.nullcontext(raw) if compression is None else _COMPRESSIONS[compression].decompressor_file(raw)
    with opened as stream:
        # The upload is as large as the upload limit allows; only what a decompressor makes must be bounded.
        unpickler = _JoblibUnpickler(stream if stream is raw else BoundedStream(stream, budget), budget)
        return unpickler.load(), unpickler.sklearn_version


# The compressions joblib.dump writes, through the interface joblib.register_compressor documents: each wrapper
# knows its format's magic number and opens a reader of it (joblib's own for zlib and gzip, the standard library's
# for the others).
_COMPRESSIONS = {"zlib": compressor.ZlibCompressorWrapper(), "gzip": compressor.GzipCompressorWrapper(),
                 "bz2": compressor.BZ2CompressorWrapper(), "lzma": compressor.LZMACompressorWrapper(),
                 "xz": compressor.XZCompressorWrapper()}


def _compression(raw: BinaryIO) -> str | None:
    """The name of the compression a file's first bytes announce (lz4 is refused before: safe_pickle.load_estimator);
    None for a file joblib wrote uncompressed."""
    start = raw.tell()
    head = raw.read(8)
    raw.seek(start)
    return next((name for name, wrapper in _COMPRESSIONS.items() if head.startswith(wrapper.prefix)), None)


# joblib's zlib and gzip files, by the window bits of their streams (joblib's BinaryZlibFile reads both).
_ZLIB_WBITS = {"zlib": zlib.MAX_WBITS, "gzip": 31}
_CHUNK = 1 << 16


def _check_stream_ends_with_file(raw: BinaryIO, compression: str, budget: Budget) -> None:
    """Refuse a zlib or gzip file whose stream ends before the file does, or unpacks past the budget, before joblib
    reads it: on bytes after a stream's end joblib's reader loops for ever, its memory doubling at each turn (a
    1.7 KB file took 23 GB, found by the pickle fuzzer). The stream is decompressed once here, a block at a time,
    and what it makes is counted and dropped."""
    if compression not in _ZLIB_WBITS:
        return
    start = raw.tell()
    stream, made = zlib.decompressobj(_ZLIB_WBITS[compression]), 0
    try:
        while not stream.eof:
            chunk = stream.unconsumed_tail or raw.read(_CHUNK)
            out = stream.decompress(chunk, _CHUNK)  # with no input left, what it still holds
            if not (chunk or out):
                break  # the file ends inside the stream: joblib's reader refuses it as such
            made += len(out)
            if made > budget.max_bytes:
                budget.check(made)  # refused: it unpacks past MAX_MODEL_MB
        trailing = stream.eof and (stream.unused_data or raw.read(1))
    except zlib.error:
        trailing = False  # a broken stream: joblib's reader refuses it as such
    finally:
        raw.seek(start)
    if trailing:
        raise InvalidArtifact(f"artifact holds bytes after the end of its {compression} stream, which no joblib.dump "
                              "writes: upload the file written by joblib.dump(model, path)")


class _Guards:
    """The checks both unpicklers share: what may be named, built, called and allocated."""

    budget: Budget
    sklearn_version: str | None = None

    def load(self):
        """pickle's own read loop, with every step counted as one object against the budget."""
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)
        self.read, self.readinto, self.readline = (
            self._unframer.read, self._unframer.readinto, self._unframer.readline
        )
        self.metastack, self.stack, self.proto = [], [], 0
        self.append = self.stack.append
        read, dispatch, budget = self.read, self.dispatch, self.budget
        left = budget.max_objects - budget.objects
        steps = 0
        try:
            while steps < left:
                steps += 1
                key = read(1)
                if not key:
                    raise EOFError
                dispatch[key[0]](self)
        except pickle._Stop as stop:
            return stop.value
        finally:
            budget.objects += steps
        raise too_many_objects(budget.max_objects)

    def find_class(self, module: str, name: str):
        """Resolve an allow-listed global; refuse everything else before importing anything."""
        if (module, name) in OLD_PROTOCOL_GLOBALS:
            raise UnsafeArtifact(
                f"artifact is a pickle of protocol 0-2 (it refers to {module}.{name}), which this "
                "server does not read: dump the model again with joblib.dump(model, path), or "
                "pickle.dump with protocol 4 or later"
            )
        module = _numpy2_module(module)
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafeArtifact(
                f"artifact refers to {module}.{name}, which is not an allowed scikit-learn or NumPy "
                f"type; {DOCS} lists what a model file may hold"
            )
        return super().find_class(module, name)

    def load_reduce(self):
        """REDUCE, once the call is known to be one a real model file makes."""
        self._check_call(self.stack[-2], self.stack[-1])
        pickle._Unpickler.load_reduce(self)

    def load_newobj(self):
        """NEWOBJ (``cls.__new__(cls, *args)``), never for an array nor a partial."""
        self._check_newobj(self.stack[-2])
        pickle._Unpickler.load_newobj(self)

    def load_newobj_ex(self):
        """NEWOBJ_EX, never for an array nor a partial."""
        self._check_newobj(self.stack[-3])
        pickle._Unpickler.load_newobj_ex(self)

    def _check_newobj(self, cls) -> None:
        if cls is functools.partial:
            raise UnsafeArtifact("artifact builds a functools.partial in a way pickle never writes")
        self._check_new(cls)

    def _instantiate(self, klass, args):
        """INST and OBJ: calls like REDUCE when given arguments, otherwise like NEWOBJ."""
        if args:
            self._check_call(klass, tuple(args))
        self._check_new(klass)
        pickle._Unpickler._instantiate(self, klass, args)

    def load_bytearray8(self):
        """BYTEARRAY8, with its announced length checked before the bytearray is allocated."""
        (size,) = struct.unpack("<Q", self.read(8))
        self.budget.check(size)
        buffer = bytearray(size)
        self.readinto(buffer)
        self.append(buffer)

    def _check_call(self, func, args) -> None:
        if isinstance(func, type) and issubclass(func, BaseEstimator):
            raise UnsafeArtifact(
                f"artifact calls {func.__name__}(...) itself; a model file only restores state"
            )
        self._check_new(func)
        check_constructor_call(func, args)
        if func is _reconstruct:  # allocates the announced shape before BUILD fills it in
            self.budget.charge(array_bytes(args[1], np.dtype(args[2]).itemsize))

    def _check_new(self, cls) -> None:
        if isinstance(cls, type) and issubclass(cls, np.ndarray):
            raise UnsafeArtifact("artifact builds a NumPy array in a way NumPy never writes")

    def _check_build(self) -> tuple[object, object]:
        """Check a BUILD before it runs; the object it sets and the state it sets it from."""
        target, state = self.stack[-2], self.stack[-1]
        # BUILD on a class or function would set attributes on it for the whole process.
        if isinstance(target, (type, FunctionType, BuiltinFunctionType)):
            raise UnsafeArtifact(
                f"artifact tries to change {getattr(target, '__name__', 'a type')} itself; "
                "a model file only sets the state of the objects it makes"
            )
        if isinstance(target, BaseEstimator):
            if not isinstance(state, dict) or not all(isinstance(name, str) for name in state):
                raise InvalidArtifact(f"artifact sets a {type(target).__name__}'s state to something other than its "
                                      "attributes by name: upload the file written by joblib.dump(model, path)")
            version = state.get("_sklearn_version")
            self.sklearn_version = check_sklearn_version(version)
        if isinstance(target, FunctionTransformer):
            check_passthrough(state)
        if isinstance(target, functools.partial):
            check_partial_state(state)
        if isinstance(target, np.dtype):
            _check_dtype_state(target, state)
        if isinstance(target, np.ndarray):
            _check_object_array_state(state)
        return target, state

    def load_build(self):
        """BUILD after the shared checks, then the state a tree copied from emptied (``_release_copied_state``)."""
        built = self._check_build()
        pickle._Unpickler.load_build(self)
        _release_copied_state(*built)


def _check_object_array_state(state) -> None:
    """An object array's state must list exactly as many objects as its shape holds: NumPy's ``__setstate__`` crashed
    the process (SIGSEGV) on a shorter list (found by the pickle fuzzer)."""
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], list)):
        return  # not an object array's list: NumPy checks the bytes of any other itself
    shape = state[1]
    if not (isinstance(shape, tuple) and all(isinstance(dim, int) and dim >= 0 for dim in shape)
            and len(state[4]) == np.prod(shape, dtype=np.int64)):
        raise InvalidArtifact("artifact holds an array of objects whose list does not fill its shape: upload the "
                              "file written by joblib.dump(model, path)")


_GUARDED_STEPS = {
    pickle.REDUCE[0]: _Guards.load_reduce,
    pickle.NEWOBJ[0]: _Guards.load_newobj,
    pickle.NEWOBJ_EX[0]: _Guards.load_newobj_ex,
    pickle.BYTEARRAY8[0]: _Guards.load_bytearray8,
    pickle.BUILD[0]: _Guards.load_build,
}


class _ObjectArrayUnpickler(_Guards, pickle._Unpickler):
    """Reads the plain pickle stream a joblib file holds for each object-dtype array."""

    def __init__(self, file, budget: Budget):
        super().__init__(file)
        self.budget = budget

    dispatch = {**pickle._Unpickler.dispatch, **_GUARDED_STEPS}


class _JoblibUnpickler(_Guards, NumpyUnpickler):
    """joblib's unpickler (arrays stored after their wrappers), with the shared checks."""

    def __init__(self, fileobj, budget: Budget):
        super().__init__("", fileobj, ensure_native_byte_order=True)
        self.budget = budget

    def load_build(self):
        """BUILD after the shared checks, then swap an array wrapper for the array it announces."""
        _Guards.load_build(self)
        if isinstance(self.stack[-1], NumpyArrayWrapper):
            self.stack.append(self._read_array(self.stack.pop()))

    def _read_array(self, wrapper: NumpyArrayWrapper) -> np.ndarray:
        if not isinstance(wrapper.dtype, np.dtype):
            raise InvalidArtifact("artifact holds an array without a NumPy dtype")
        if wrapper.dtype.hasobject:
            # Some joblib versions read these with a bare pickle.load: never hand them the stream.
            return _ObjectArrayUnpickler(self.file_handle, self.budget).load()
        # Its bytes follow in the stream and are charged as read; refuse a size that cannot fit.
        self.budget.check(array_bytes(wrapper.shape, wrapper.dtype.itemsize))
        return wrapper.read(self, self.ensure_native_byte_order)

    dispatch = {**NumpyUnpickler.dispatch, **_GUARDED_STEPS, pickle.BUILD[0]: load_build}


def _check_dtype_state(target: np.dtype, state) -> None:
    """A dtype's state must be the one NumPy writes for the dtype it describes: NumPy takes whatever it is given,
    and a field whose type is not a dtype (a name instead) crashes the process when the array is filled."""
    try:
        version, endian, subarray, names, fields, itemsize, _, flags = state
        if names is not None:
            kinds = [fields[name] for name in names]
            if not all(isinstance(kind[0], np.dtype) and type(kind[1]) is int and len(kind) == 2 for kind in kinds):
                raise ValueError("a field is not a dtype at an offset")
            fresh = np.dtype({"names": list(names), "formats": [kind[0] for kind in kinds],
                              "offsets": [kind[1] for kind in kinds], "itemsize": itemsize}, align=bool(flags & 128))
        elif subarray is not None:
            if not isinstance(subarray[0], np.dtype):
                raise ValueError("a subarray's type is not a dtype")
            fresh = np.dtype((subarray[0], subarray[1]))
        else:
            fresh = target.newbyteorder(endian) if endian in "<>" else target
        same = version == 3 and fresh.__reduce__()[2] == tuple(state)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        same = False
    if not same:
        raise InvalidArtifact(f"artifact holds a NumPy dtype whose state {str(state)[:120]} is not one NumPy writes")


def _release_copied_state(target: object, state: object) -> None:
    """A tree copies its nodes and values into buffers of its own: empty the state it was built from,
    which the pickle's memo would otherwise keep alive to the end of the file (a second copy of every
    tree of a forest, twice the memory at the peak of a load)."""
    if isinstance(target, Tree) and isinstance(state, dict):
        state.clear()


def _numpy2_module(module: str) -> str:
    """Files pickled under NumPy 1 name ``numpy.core``, which NumPy 2 calls ``numpy._core``."""
    if module == "numpy.core" or module.startswith("numpy.core."):
        return "numpy._core" + module[len("numpy.core") :]
    return module
