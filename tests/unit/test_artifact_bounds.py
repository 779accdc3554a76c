"""Reading an artifact builds at most MAX_MODEL_MB of bytes and a million objects, whatever its shape."""
import pickle
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from joblib.numpy_pickle import NumpyArrayWrapper
from numpy._core.multiarray import _reconstruct
from sklearn.ensemble import RandomForestClassifier

from bench.bomb_files import MIB, empty_lists_pickle, many_arrays_bomb, one_array_bomb
from registry.artifacts.loading.limits import MAX_OBJECTS
from registry.artifacts.safe_pickle import load_estimator
from registry.errors import ArtifactTooLarge, InvalidArtifact, UnsafeArtifact

LIMIT = 4 * MIB
# What each decompressor works with whatever the file (joblib inflates zlib 8 KB at a time, which
# can make 8 MB; xz keeps its dictionary), on top of the bytes charged to the limit.
DECOMPRESSOR_MEMORY = 32 * MIB
COMPRESSORS = ["zlib", "gzip", "bz2", "xz", "lzma"]


def bomb_size(compressor: str) -> int:
    """Big enough to dwarf the bounds; lzma (one stream, really compressed) is slower to make."""
    return 32 * MIB if compressor == "lzma" else 256 * MIB


def refused_within(data: bytes, max_bytes: int = LIMIT) -> tuple[ArtifactTooLarge, int]:
    """The refusal of ``data`` and the peak bytes Python allocated while reading it."""
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactTooLarge) as refused:
            load_estimator(data, max_bytes=max_bytes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return refused.value, peak


@pytest.mark.parametrize("compressor", COMPRESSORS)
def test_a_compressed_array_bigger_than_the_limit_is_refused_before_it_is_read(compressor):
    refusal, peak = refused_within(one_array_bomb(bomb_size(compressor), compressor))

    assert "MAX_MODEL_MB (4 MB)" in refusal.detail
    assert peak < LIMIT + DECOMPRESSOR_MEMORY


@pytest.mark.parametrize("compressor", COMPRESSORS)
def test_many_small_compressed_arrays_are_stopped_by_the_running_count(compressor):
    refusal, peak = refused_within(many_arrays_bomb(bomb_size(compressor), compressor, array_bytes=MIB))

    assert "MAX_MODEL_MB" in refusal.detail
    assert peak < LIMIT + DECOMPRESSOR_MEMORY


def test_a_pickle_of_thirty_million_empty_lists_is_refused_after_the_object_limit():
    with pytest.raises(ArtifactTooLarge) as refused:
        load_estimator(empty_lists_pickle(30_000_000), max_bytes=2048 * MIB)

    assert f"more than {MAX_OBJECTS:,} objects" in refused.value.detail


def test_an_announced_array_of_a_terabyte_is_refused_without_allocating_it():
    wrapper = NumpyArrayWrapper(np.ndarray, (10**12,), "C", np.dtype("float64"), allow_mmap=False)
    wrapper.numpy_array_alignment_bytes = None
    data = pickle.dumps(wrapper, protocol=3)[:-1] + b"."  # uncompressed, and no data follows

    refusal, peak = refused_within(data)

    assert "MAX_MODEL_MB" in refusal.detail
    assert peak < MIB


def test_an_array_reconstructed_with_a_huge_shape_is_refused():
    data = pickle.dumps(_Reconstructs((10**6, 10**6)), protocol=4)

    refusal, peak = refused_within(data)

    assert "MAX_MODEL_MB" in refusal.detail
    assert peak < MIB


class _Reconstructs:
    def __init__(self, shape):
        self.shape = shape

    def __reduce__(self):
        return _reconstruct, (np.ndarray, self.shape, b"f8")


def test_a_bytearray_announcing_more_than_the_limit_is_refused_before_it_is_allocated():
    data = b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b"."

    refusal, peak = refused_within(data)

    assert "MAX_MODEL_MB" in refusal.detail
    assert peak < MIB


def test_compressed_bytes_announcing_more_than_the_limit_are_refused_before_they_are_read():
    data = zlib.compress(b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b".")  # BINBYTES8 of a terabyte

    refusal, peak = refused_within(data)

    assert "MAX_MODEL_MB" in refusal.detail
    assert peak < LIMIT + DECOMPRESSOR_MEMORY


def test_an_array_built_by_calling_ndarray_is_refused():
    class CallsNdarray:
        def __reduce__(self):
            return np.ndarray, ((10**9,),)

    with pytest.raises(UnsafeArtifact, match="builds a NumPy array in a way NumPy never writes"):
        load_estimator(pickle.dumps(CallsNdarray(), protocol=4))


def test_deeply_nested_lists_are_refused_as_not_a_model_without_crashing():
    depth = 200_000
    data = b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b"."

    with pytest.raises(InvalidArtifact, match="holds a list, not a scikit-learn estimator"):
        load_estimator(data)


def test_a_dict_with_millions_of_entries_is_refused_after_the_object_limit():
    entries = b"K\x00K\x01" * 1_000_000  # the same key again and again: the dict stays small
    data = b"\x80\x04}(" + entries + b"u."

    with pytest.raises(ArtifactTooLarge, match="objects"):
        load_estimator(data)


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_a_pickle_of_an_old_protocol_is_refused_with_what_to_do(numeric_data, protocol):
    X, _, y_class = numeric_data
    model = RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0).fit(X, y_class)

    with pytest.raises(UnsafeArtifact) as refused:
        load_estimator(pickle.dumps(model, protocol=protocol))

    detail = refused.value.detail
    assert "protocol 0-2" in detail
    assert "joblib.dump(model, path)" in detail
    assert len(detail) < 250


def test_a_500_tree_forest_loads_within_the_default_bounds(numeric_data, dump):
    X, _, y_class = numeric_data
    model = RandomForestClassifier(n_estimators=500, random_state=0).fit(X, y_class)

    loaded = load_estimator(dump(model, "joblib-zlib"))

    assert len(loaded.estimator.estimators_) == 500


def test_a_model_just_under_the_limit_loads_and_one_just_over_is_refused(numeric_data, dump):
    X, y, _ = numeric_data
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y > 0)
    data = dump(model, "joblib-zlib")
    size = len(dump(model, "joblib"))

    assert load_estimator(data, max_bytes=size + 1024).estimator.n_estimators == 20
    with pytest.raises(ArtifactTooLarge):
        load_estimator(data, max_bytes=size // 2)
