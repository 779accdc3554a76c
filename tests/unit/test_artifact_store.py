"""The artifact store: content-addressed, written atomically, verified on every read."""
import hashlib
import os
from pathlib import Path

import pytest

from registry.artifacts import ArtifactStore, sha256_of
from registry.errors import ArtifactCorrupted

DATA = b"model bytes \x00\x01\x02" * 100


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_put_returns_the_sha256_and_get_returns_the_same_bytes(store):
    digest = store.put(DATA)

    assert digest == hashlib.sha256(DATA).hexdigest() == sha256_of(DATA)
    assert store.get(digest) == DATA
    assert store.exists(digest)


def test_a_file_is_named_by_its_content_only(store):
    digest = store.put(DATA)

    assert store.path_for(digest) == store.root / "sha256" / digest[:2] / digest
    assert files_under(store.root) == [store.path_for(digest)]


def test_putting_the_same_bytes_twice_keeps_one_file(store):
    first = store.put(DATA)
    mtime = store.path_for(first).stat().st_mtime_ns

    second = store.put(DATA)

    assert first == second
    assert files_under(store.root) == [store.path_for(first)]
    assert store.path_for(first).stat().st_mtime_ns == mtime  # an intact file is left alone


def test_different_bytes_get_different_files(store):
    a, b = store.put(b"a"), store.put(b"b")

    assert a != b
    assert {p.name for p in files_under(store.root)} == {a, b}


def test_an_empty_artifact_round_trips(store):
    assert store.get(store.put(b"")) == b""


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(b"tampered"),
    lambda path: path.write_bytes(DATA[:-1]),
    lambda path: path.write_bytes(DATA + b"\n"),
], ids=["overwritten", "truncated", "appended"])
def test_bytes_that_no_longer_match_their_sha256_are_corrupted(store, damage):
    digest = store.put(DATA)
    damage(store.path_for(digest))

    with pytest.raises(ArtifactCorrupted, match="no longer matches its sha256"):
        store.get(digest)


def test_a_missing_file_is_corrupted(store):
    digest = store.put(DATA)
    store.path_for(digest).unlink()

    with pytest.raises(ArtifactCorrupted, match="missing"):
        store.get(digest)


def test_a_digest_never_stored_is_corrupted_rather_than_found(store):
    with pytest.raises(ArtifactCorrupted):
        store.get(sha256_of(b"never stored"))


def test_the_corruption_detail_names_the_digest_but_not_the_path(store):
    digest = store.put(DATA)
    store.path_for(digest).write_bytes(b"x")

    with pytest.raises(ArtifactCorrupted) as caught:
        store.get(digest)

    assert digest in caught.value.detail
    assert str(store.root) not in caught.value.detail


@pytest.mark.parametrize("damage", [lambda p: p.write_bytes(b"tampered"), Path.unlink], ids=["overwritten", "deleted"])
def test_putting_the_original_bytes_again_repairs_a_damaged_file(store, damage):
    digest = store.put(DATA)
    damage(store.path_for(digest))

    assert store.put(DATA) == digest
    assert store.get(digest) == DATA


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_write_leaves_neither_the_file_nor_a_temp_file(store, monkeypatch, failing):
    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, fail)

    with pytest.raises(OSError, match="No space left"):
        store.put(DATA)

    monkeypatch.undo()
    assert files_under(store.root) == []
    assert not store.exists(sha256_of(DATA))


def test_a_failed_rewrite_keeps_the_previous_file_whole(store, monkeypatch):
    digest = store.put(DATA)
    store.path_for(digest).write_bytes(b"damaged")
    monkeypatch.setattr(os, "replace", lambda *_: (_ for _ in ()).throw(OSError("disk gone")))

    with pytest.raises(OSError):
        store.put(DATA)

    monkeypatch.undo()
    assert files_under(store.root) == [store.path_for(digest)]
    assert store.path_for(digest).read_bytes() == b"damaged"


@pytest.mark.parametrize("digest", [
    "../../etc/passwd",
    "..",
    "",
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "g" * 64,
    "a" * 64 + "\n",
    "a" * 63 + "/",
    "/" + "a" * 63,
    "a" * 32 + "/../" + "a" * 28,
    None,
    b"a" * 64,
])
def test_path_for_refuses_anything_but_a_lowercase_hex_sha256(store, digest):
    with pytest.raises(ValueError, match="not a sha256"):
        store.path_for(digest)


def test_get_refuses_a_path_like_digest_before_touching_the_disk(store, tmp_path):
    (tmp_path / "secret").write_bytes(b"secret")

    with pytest.raises(ValueError):
        store.get("../secret")


def test_the_store_is_reachable_when_its_root_can_be_written(store):
    assert store.is_reachable()
    assert store.root.is_dir()
    assert files_under(store.root) == []  # the probe leaves nothing behind


def test_the_store_is_unreachable_under_a_regular_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")

    assert not ArtifactStore(blocker / "artifacts").is_reachable()
