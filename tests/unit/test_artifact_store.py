"""The artifact store: content-addressed, written atomically, verified on every read."""
import errno
import hashlib
import os
from pathlib import Path

import pytest

from registry.artifacts.local_store import LocalStore
from registry.artifacts.store import sha256_of
from registry.errors import ArtifactCorrupted, StoreFull, StoreUnavailable

DATA = b"model bytes \x00\x01\x02" * 100


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "artifacts")


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


def test_putting_the_same_bytes_twice_keeps_one_file_and_marks_it_used(store):
    first = store.put(DATA)
    path = store.path_for(first)
    os.utime(path, (0, 0))
    inode = path.stat().st_ino

    second = store.put(DATA)

    assert first == second
    assert files_under(store.root) == [path]
    assert path.stat().st_ino == inode  # an intact file is not rewritten …
    assert path.stat().st_mtime > 0  # … but marked as just used, so `artifacts gc` leaves it alone


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
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, fail)

    with pytest.raises(StoreFull, match="No space left"):
        store.put(DATA)

    monkeypatch.undo()
    assert files_under(store.root) == []
    assert not store.exists(sha256_of(DATA))


def test_a_failed_rewrite_keeps_the_previous_file_whole(store, monkeypatch):
    digest = store.put(DATA)
    store.path_for(digest).write_bytes(b"damaged")
    monkeypatch.setattr(os, "replace", lambda *_: (_ for _ in ()).throw(OSError(errno.EIO, "disk gone")))

    with pytest.raises(StoreUnavailable, match="Input/output error"):
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
    assert store.problem() is None
    assert store.root.is_dir()
    assert files_under(store.root) == []  # the probe leaves nothing behind


def test_the_store_is_unreachable_under_a_regular_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")

    assert LocalStore(blocker / "artifacts").problem() == "the artifact store cannot be written"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_a_store_without_room_is_full_and_says_what_an_operator_should_do(store, monkeypatch, code):
    monkeypatch.setattr(os, "fsync", lambda _fd: (_ for _ in ()).throw(OSError(code, os.strerror(code))))

    with pytest.raises(StoreFull) as caught:
        store.put(DATA)

    assert "free space" in caught.value.detail and "artifacts gc" in caught.value.detail
    assert str(store.root) not in caught.value.detail


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EIO, errno.ENOENT])
def test_a_store_that_cannot_be_written_is_unavailable_and_nothing_is_left(store, monkeypatch, code):
    def refuse(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)

    with pytest.raises(StoreUnavailable) as caught:
        store.put(DATA)

    assert os.strerror(code) in caught.value.detail and "ARTIFACT_ROOT" in caught.value.detail
    monkeypatch.undo()
    assert files_under(store.root) == []


def test_a_root_that_cannot_be_created_is_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(StoreUnavailable, match="Not a directory"):
        LocalStore(blocker / "artifacts").put(DATA)


@pytest.mark.parametrize("damage, status", [
    (lambda path: None, "ok"),
    (lambda path: path.write_bytes(b"x"), "damaged"),
    (Path.unlink, "missing"),
])
def test_check_rehashes_a_stored_file(store, damage, status):
    digest = store.put(DATA)
    damage(store.path_for(digest))

    assert store.check(digest) == status


def test_files_lists_artifacts_and_unfinished_uploads_but_nothing_else(store):
    digest = store.put(DATA)
    shelf = store.path_for(digest).parent
    (shelf / ".incoming-abc").write_bytes(b"half")
    (shelf / "notes.txt").write_text("not ours")

    found = {f.key.rsplit("/", 1)[-1]: f for f in store.files()}

    assert set(found) == {digest, ".incoming-abc"}
    assert found[digest].sha256 == digest and found[digest].size == len(DATA)
    assert found[".incoming-abc"].sha256 is None


def test_a_file_touched_after_the_cutoff_is_not_removed(store):
    digest = store.put(DATA)
    (found,) = store.files()

    assert not store.remove_if_older(found, cutoff=found.modified - 1)
    assert store.remove_if_older(found, cutoff=found.modified)
    assert not store.exists(digest)


def test_a_file_that_cannot_be_read_is_unavailable_rather_than_a_bug(store, monkeypatch):
    digest = store.put(DATA)
    monkeypatch.setattr(Path, "read_bytes", lambda _self: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))

    with pytest.raises(StoreUnavailable, match="cannot be read right now"):
        store.get(digest)
