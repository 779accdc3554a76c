"""What every artifact store promises, held for both kinds: a local directory and a real S3 server
(SeaweedFS) behind a node cache. The local store's own details are in tests/unit/test_artifact_store.py."""
import io
import time

import obstore
import pytest

from registry.artifacts.local_store import LocalStore
from registry.artifacts.s3_store import S3Settings
from registry.artifacts.store import key_for, sha256_of
from registry.artifacts.store_root import open_store
from registry.errors import ArtifactCorrupted, ArtifactMissing

DATA = b"model bytes \x00\x01\x02" * 1000


class Kind:
    """One kind of store under test, with a way to reach behind it and damage what it holds."""

    def __init__(self, store, overwrite, delete):
        self.store, self.overwrite, self.delete = store, overwrite, delete


@pytest.fixture(params=["local", "s3"])
def kind(request, tmp_path):
    if request.param == "local":
        store = LocalStore(tmp_path / "artifacts")
        return Kind(store, lambda d, b: store.path_for(d).write_bytes(b), lambda d: store.path_for(d).unlink())
    server, (bucket, prefix) = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_prefix")
    store = open_store(f"s3://{bucket}/{prefix}", s3=_settings(server), cache_dir=tmp_path / "cache", cache_bytes=10**9)
    raw = server.client(bucket, prefix)

    def overwrite(digest, data):
        obstore.put(raw, key_for(digest), data)
        store.cache.drop(digest)

    def delete(digest):
        obstore.delete(raw, key_for(digest))
        store.cache.drop(digest)

    return Kind(store, overwrite, delete)


def _settings(server):
    env = server.env("unused")
    return S3Settings(url="", endpoint=env["AWS_ENDPOINT_URL"], access_key_id=env["AWS_ACCESS_KEY_ID"],
                      secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region=env["AWS_REGION"])


def test_put_then_get_round_trips_the_bytes_under_their_sha256(kind):
    digest = kind.store.put(DATA)

    assert digest == sha256_of(DATA)
    assert kind.store.get(digest) == DATA
    assert kind.store.check(digest) == "ok"


def test_a_file_is_streamed_from_its_start_whatever_was_read_of_it_before(kind):
    source = io.BytesIO(DATA)
    source.read(100)

    kind.store.put_file(source, sha256_of(DATA), len(DATA))

    assert kind.store.get(sha256_of(DATA)) == DATA


def test_a_source_that_does_not_hash_to_the_named_digest_is_never_stored_under_it(kind):
    wrong = sha256_of(b"something else")

    with pytest.raises(ValueError, match="hash"):
        kind.store.put_file(io.BytesIO(DATA), wrong, len(DATA))

    assert kind.store.check(wrong) == "missing"


def test_a_large_file_goes_in_parts_and_comes_back_whole(kind):
    data = bytes(range(256)) * (20 * 1024 * 1024 // 256 + 7)  # over two 8 MB parts, not a multiple of them

    kind.store.put_file(io.BytesIO(data), sha256_of(data), len(data))

    assert kind.store.get(sha256_of(data)) == data


def test_damaged_or_missing_bytes_are_never_served(kind):
    digest = kind.store.put(DATA)
    kind.overwrite(digest, b"bit rot")

    assert kind.store.check(digest) == "damaged"
    with pytest.raises(ArtifactCorrupted, match="no longer matches its sha256"):
        kind.store.get(digest)

    kind.delete(digest)
    assert kind.store.check(digest) == "missing"
    with pytest.raises(ArtifactMissing, match=f"{digest} is missing"):
        kind.store.get(digest)


def test_putting_the_original_bytes_again_repairs_a_damaged_artifact(kind):
    digest = kind.store.put(DATA)
    kind.overwrite(digest, b"bit rot")

    assert kind.store.put(DATA) == digest
    assert kind.store.get(digest) == DATA


def test_files_lists_every_artifact_with_its_size_and_age(kind):
    before = time.time() - 60
    digests = {kind.store.put(DATA), kind.store.put(b"other")}

    found = {f.sha256: f for f in kind.store.files()}

    assert set(found) == digests
    assert found[sha256_of(DATA)].size == len(DATA)
    assert found[sha256_of(DATA)].key == key_for(sha256_of(DATA))
    assert all(f.modified > before for f in found.values())


def test_removal_rechecks_the_age_and_keeps_what_was_written_after_the_cutoff(kind):
    digest = kind.store.put(DATA)
    (found,) = kind.store.files()

    assert not kind.store.remove_if_older(found, cutoff=found.modified - 10)
    assert kind.store.check(digest) == "ok"
    assert kind.store.remove_if_older(found, cutoff=found.modified + 10)
    assert kind.store.check(digest) == "missing"


def test_a_store_that_answers_has_no_problem(kind):
    assert kind.store.problem() is None
