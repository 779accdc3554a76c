"""``flask artifacts gc|verify``: what an operator runs after a crash, on a real database."""
import os
import time

import pytest

from tests.helpers import artifact_bytes, scaled_sum, upload_ok

HOUR = 3600


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def store(app):
    return app.extensions["model_registry"].store


def flask(runner, *args):
    return runner.invoke(args=["artifacts", *args])


def aged(path, seconds: float):
    """Pretend ``path`` was last written ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


@pytest.fixture
def stored(client, ci, admin, store):
    """Versions 1 (archived) and 2 of ``m``, an orphan artifact and an unfinished upload, all two hours old."""
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", scaled_sum(2))
    assert client.delete("/models/m/versions/1", headers=admin).status_code == 200
    orphan = store.path_for(store.put(artifact_bytes(scaled_sum(3))))  # a crash between file and row
    partial = orphan.parent / ".incoming-k1ll3d"
    partial.write_bytes(b"half an upload")
    for found in store.files():
        aged(store.root / found.key, 2 * HOUR)
    return orphan, partial


def names(store) -> set[str]:
    return {found.key.rsplit("/", 1)[-1] for found in store.files()}


def test_gc_removes_orphans_and_unfinished_uploads_and_keeps_every_referenced_file(runner, client, store, stored):
    orphan, partial = stored

    result = flask(runner, "gc")

    assert result.exit_code == 0, result.output
    assert names(store) == {v["sha256"] for v in client.get("/models/m/versions?include_archived=true").get_json()["items"]}
    assert not orphan.exists() and not partial.exists()
    assert f"removed unreferenced artifact {orphan.name}" in result.output
    assert "removed unfinished upload" in result.output
    assert result.output.splitlines()[-1].startswith("gc: removed 2 file(s)")
    assert "kept 2 referenced" in result.output
    assert client.post("/models/m/2/predict", json={"instances": [[1.0, 1.0, 1.0]]}).status_code == 200


def test_a_dry_run_lists_and_removes_nothing(runner, store, stored):
    before = names(store)

    result = flask(runner, "gc", "--dry-run")

    assert result.exit_code == 0, result.output
    assert names(store) == before
    assert "would remove unreferenced artifact" in result.output and "would remove unfinished upload" in result.output
    assert result.output.splitlines()[-1].startswith("gc (dry run): would remove 2 file(s)")


def test_files_younger_than_the_grace_period_are_kept(runner, store, stored):
    orphan, partial = stored
    aged(orphan, 10 * 60)
    aged(partial, 10 * 60)

    result = flask(runner, "gc", "--grace-minutes", "30")

    assert result.exit_code == 0, result.output
    assert orphan.exists() and partial.exists()
    assert "removed 0 file(s)" in result.output and "2 younger than 30 min" in result.output


def test_a_grace_of_zero_still_never_removes_a_referenced_file(runner, client, store, stored):
    referenced = {v["sha256"] for v in client.get("/models/m/versions?include_archived=true").get_json()["items"]}

    assert flask(runner, "gc", "--grace-minutes", "0").exit_code == 0

    assert names(store) == referenced


def test_uploading_bytes_already_stored_protects_them_from_a_concurrent_gc(runner, client, ci, store, stored):
    orphan, _ = stored

    number = upload_ok(client, ci, "other", scaled_sum(3))  # the orphan's bytes, now given a row
    result = flask(runner, "gc")

    assert orphan.exists()
    assert client.get(f"/models/other/versions/{number}").get_json()["sha256"] == orphan.name
    assert "removed unreferenced" not in result.output


def test_verify_exits_0_when_every_referenced_file_is_intact(runner, stored):
    result = flask(runner, "verify")

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "verify: 2 artifact(s) checked: 2 ok, 0 damaged, 0 missing"


def test_verify_names_damaged_and_missing_files_and_exits_1(runner, client, store, stored):
    shas = {v["version"]: v["sha256"] for v in client.get("/models/m/versions?include_archived=true").get_json()["items"]}
    store.path_for(shas[1]).unlink()
    store.path_for(shas[2]).write_bytes(b"bit rot")

    result = flask(runner, "verify")

    assert result.exit_code == 1
    assert f"missing {shas[1]}: m v1" in result.output
    assert f"damaged {shas[2]}: m v2" in result.output
    assert "0 ok, 1 damaged, 1 missing" in result.output and "re-upload the original" in result.output


def test_both_commands_work_on_an_empty_store(runner):
    assert flask(runner, "gc").output.startswith("gc: removed 0 file(s)")
    assert flask(runner, "verify").output.startswith("verify: 0 artifact(s) checked")



def test_gc_on_a_store_it_cannot_write_says_so_in_one_line(runner, store, stored, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("pathlib.Path.unlink", refuse)

    result = flask(runner, "gc")

    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: the artifact store cannot be written right now (Read-only file system)")


@pytest.fixture
def misplaced(client, store, stored):
    """Two files named by a digest on a shelf that is not the digest's: a copy of the orphan (referenced by
    nothing) and a copy of version 2 (referenced, and intact in its own place), two hours old."""
    orphan, _ = stored
    referenced = client.get("/models/m/versions/2").get_json()["sha256"]
    shelf = store.root / "sha256" / ("00" if orphan.name[:2] != "00" else "01")
    shelf.mkdir()
    copies = {"orphan": shelf / orphan.name, "referenced": shelf / referenced}
    copies["orphan"].write_bytes(orphan.read_bytes())
    copies["referenced"].write_bytes(store.path_for(referenced).read_bytes())
    for copy in copies.values():
        aged(copy, 2 * HOUR)
    return copies


def test_gc_and_its_dry_run_agree_on_misplaced_files(runner, store, misplaced):
    dry = flask(runner, "gc", "--dry-run")
    before = names(store)
    done = flask(runner, "gc")

    assert dry.exit_code == 0 and done.exit_code == 0, dry.output + done.output
    listed = [line.replace("would remove", "removed", 1) for line in dry.output.splitlines()[:-1]]
    assert listed == done.output.splitlines()[:-1]  # the same files, named alike
    assert f"removed misplaced file: {misplaced['orphan'].relative_to(store.root)}" in done.output
    assert not misplaced["orphan"].exists()
    # A misplaced copy of a referenced artifact is kept by both, and both say where it belongs.
    assert misplaced["referenced"].exists() and misplaced["referenced"].name in before
    for output in (dry.output, done.output):
        assert (f"kept misplaced copy of a referenced artifact: {misplaced['referenced'].relative_to(store.root)} "
                f"(its place is {store.path_for(misplaced['referenced'].name).relative_to(store.root)})") in output
