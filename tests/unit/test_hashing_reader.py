"""HashingReader: the sha256 of what a writer read, with no read of its own."""
import hashlib
import io

from registry.artifacts.store import HashingReader

DATA = bytes(range(256)) * 100


def test_bytes_read_front_to_back_hash_to_the_source():
    reader = HashingReader(io.BytesIO(DATA))
    reader.seek(0, io.SEEK_END)  # a writer asking the size first
    reader.seek(0)
    while reader.read(1000):
        pass
    assert reader.result() == (hashlib.sha256(DATA).hexdigest(), len(DATA))


def test_a_part_read_again_is_hashed_once():
    reader = HashingReader(io.BytesIO(DATA))
    reader.read(5000)
    reader.seek(2000)  # a retried part
    while reader.read(3000):
        pass
    assert reader.result() == (hashlib.sha256(DATA).hexdigest(), len(DATA))


def test_a_gap_leaves_the_hash_of_what_was_read_without_one():
    reader = HashingReader(io.BytesIO(DATA))
    reader.read(100)
    reader.seek(200)
    reader.read()
    assert reader.result() == (hashlib.sha256(DATA[:100]).hexdigest(), 100)
