"""The service on S3-compatible object storage (a real SeaweedFS): uploads land in the bucket, every
replica serves them through its own node cache, the artifact commands work on S3, a local store
migrates to S3, and an unreachable store is a named 503 that heals without a restart."""
import obstore
import pytest
from prometheus_client import REGISTRY

from api.settings import settings_of
from bench.fleet import forest
from bench.harness.tcp_proxy import CuttableProxy, DamagingProxy
from registry.artifacts import s3_store
from registry.artifacts.store import key_for, sha256_of
from tests.helpers import artifact_bytes, assert_problem, scaled_sum, upload, upload_ok, wait_for

ROW = {"instances": [[1.0, 2.0, 3.0]]}


def s3_settings(server, bucket, prefix, endpoint=None) -> dict:
    env = server.env(bucket, prefix)
    return {
        "ARTIFACT_ROOT": env["ARTIFACT_ROOT"],
        "AWS_ENDPOINT_URL": endpoint or env["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": env["AWS_REGION"],
    }


@pytest.fixture
def replica(build_app, s3_server, s3_prefix, tmp_path):
    """``replica(name)``: an app on the test's database and S3 prefix, with a node cache of its own."""
    bucket, prefix = s3_prefix

    def build(name="one", **overrides):
        settings = s3_settings(s3_server, bucket, prefix)
        settings.update(ARTIFACT_CACHE_DIR=tmp_path / f"cache-{name}", **overrides)
        return build_app(**settings)

    return build


@pytest.fixture
def raw(s3_server, s3_prefix):
    """A client on the test's prefix, to look behind the service."""
    return s3_server.client(*s3_prefix)


def predict(client, ref="1"):
    return client.post(f"/models/m/{ref}/predict", json=ROW)


def test_an_upload_lands_in_the_bucket_and_every_replica_serves_it_from_its_own_cache(replica, raw, ci, tmp_path):
    first, second = replica("one"), replica("two")
    number = upload_ok(first.test_client(), ci, "m", scaled_sum(2))
    sha = first.test_client().get("/models/m/versions/1").get_json()["sha256"]

    assert obstore.head(raw, key_for(sha))["size"] > 0
    assert not (tmp_path / "artifacts").exists()  # nothing on a local store
    answer = predict(second.test_client(), str(number))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["predictions"] == [pytest.approx(12.0)]
    assert (tmp_path / "cache-two" / key_for(sha)).is_file()
    download = second.test_client().get("/models/m/versions/1/artifact", headers=ci)
    assert download.status_code == 200 and download.data == artifact_bytes(scaled_sum(2))


def test_gc_and_verify_work_on_the_bucket(replica, raw, ci, admin):
    app = replica()
    client, runner = app.test_client(), app.test_cli_runner()
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", scaled_sum(2))
    store = app.extensions["model_registry"].store
    orphan = store.put(artifact_bytes(scaled_sum(3)))  # a crash between the object and its row
    shas = [v["sha256"] for v in client.get("/models/m/versions").get_json()["items"]]

    shelf = "00" if orphan[:2] != "00" else "01"  # copies named by a digest on another shelf than theirs
    obstore.put(raw, f"sha256/{shelf}/{orphan}", artifact_bytes(scaled_sum(3)))
    obstore.put(raw, f"sha256/{shelf}/{shas[0]}", b"a copy of version 1, away from its place")

    dry = runner.invoke(args=["artifacts", "gc", "--grace-minutes", "0", "--dry-run"])
    assert dry.exit_code == 0 and f"would remove unreferenced artifact {orphan}" in dry.output
    collected = runner.invoke(args=["artifacts", "gc", "--grace-minutes", "0"])
    assert collected.exit_code == 0, collected.output
    assert [line.replace("would remove", "removed", 1) for line in dry.output.splitlines()[:-1]] == \
        collected.output.splitlines()[:-1]
    assert f"removed misplaced file: sha256/{shelf}/{orphan}" in collected.output
    assert f"kept misplaced copy of a referenced artifact: sha256/{shelf}/{shas[0]}" in collected.output
    assert {f.key for f in store.files()} == {key_for(sha) for sha in shas} | {f"sha256/{shelf}/{shas[0]}"}

    obstore.put(raw, key_for(shas[0]), b"bit rot")
    obstore.delete(raw, key_for(shas[1]))
    verified = runner.invoke(args=["artifacts", "verify"])
    assert verified.exit_code == 1
    assert f"damaged {shas[0]}" in verified.output and f"missing {shas[1]}" in verified.output


def test_a_local_store_migrates_to_s3_resumably_and_is_served_from_there(build_app, s3_server, s3_prefix, ci, tmp_path):
    bucket, prefix = s3_prefix
    s3_env = s3_settings(s3_server, bucket, prefix)
    local = build_app(artifact_root=tmp_path / "artifacts", ARTIFACT_CACHE_DIR=tmp_path / "migrate-cache",
                      **{k: v for k, v in s3_env.items() if k != "ARTIFACT_ROOT"})
    for factor in (1, 2, 3):
        upload_ok(local.test_client(), ci, "m", scaled_sum(factor))
    store = local.extensions["model_registry"].store
    damaged = next(iter(store.files()))
    store.path_for(damaged.sha256).write_bytes(b"bit rot")
    runner = local.test_cli_runner()

    first = runner.invoke(args=["artifacts", "migrate", "--to", s3_env["ARTIFACT_ROOT"]])
    assert first.exit_code == 1
    assert "2 artifact(s) copied and verified" in first.output
    assert f"not copied {damaged.sha256}: the source file is damaged" in first.output

    versions = local.test_client().get("/models/m/versions").get_json()["items"]
    original = {1: scaled_sum(1), 2: scaled_sum(2), 3: scaled_sum(3)}
    repaired = next(v["version"] for v in versions if v["sha256"] == damaged.sha256)
    store.put(artifact_bytes(original[repaired]))  # the original bytes repair the local file
    second = runner.invoke(args=["artifacts", "migrate", "--to", s3_env["ARTIFACT_ROOT"]])
    assert second.exit_code == 0, second.output
    assert "1 artifact(s) copied and verified" in second.output and "2 already in" in second.output

    on_s3 = build_app(**s3_env, ARTIFACT_CACHE_DIR=tmp_path / "cache")
    for number in (1, 2, 3):
        answer = predict(on_s3.test_client(), str(number))
        assert answer.get_json()["predictions"] == [pytest.approx(6.0 * number)]


def test_migrate_refuses_a_target_that_is_not_s3(app):
    result = app.test_cli_runner().invoke(args=["artifacts", "migrate", "--to", "/srv/elsewhere"])
    assert result.exit_code != 0 and "name an S3 store, s3://bucket/prefix" in result.output


@pytest.fixture
def proxied(s3_server, replica):
    """An app whose S3 endpoint goes through a proxy the test can cut."""
    with CuttableProxy(("127.0.0.1", s3_server.ports["s3"])) as proxy:
        yield replica("proxied", AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}"), proxy


def test_while_the_store_is_down_loaded_versions_serve_and_what_needs_the_store_is_a_named_503(proxied, ci, admin):
    app, proxy = proxied
    client = app.test_client()
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", scaled_sum(2))
    assert client.post("/models/m/versions/1/promote", json={"alias": "production"}, headers=admin).status_code == 200
    assert predict(client, "production").status_code == 200

    proxy.cut()
    store_name = settings_of(app).storage.artifact_root
    assert predict(client, "production").get_json()["predictions"] == [pytest.approx(6.0)]
    refused = upload(client, ci, "m", scaled_sum(3))
    body = assert_problem(refused, 503, store_name, "cannot be")
    assert refused.headers["Retry-After"].isdigit()
    uncached = predict(client, "2")
    assert_problem(uncached, 503, store_name)
    ready = client.get("/readyz")
    assert ready.status_code == 200  # it serves what it holds
    assert store_name in ready.get_json()["problems"]["artifact_store"]
    assert "detail" in body

    proxy.restore()  # the next readiness probe finds the store back, and calls to it resume at once
    assert client.get("/readyz").get_json()["status"] == "ready"
    healed = upload(client, ci, "m", scaled_sum(3))
    assert healed.status_code == 201, healed.get_json()
    # v2's failed load is tried again once its backoff (0.25 s here) has passed, not before.
    answered = wait_for(lambda: (r := predict(client, "2")).status_code == 200 and r, "v2 to load once the store is back")
    assert answered.get_json()["predictions"] == [pytest.approx(12.0)]


def test_with_the_store_down_a_new_process_serves_what_this_machine_cached(proxied, replica, ci, admin, tmp_path):
    app, proxy = proxied
    client = app.test_client()
    upload_ok(client, ci, "m", scaled_sum(1))
    assert predict(client, "1").status_code == 200  # fetched into this machine's node cache
    proxy.cut()

    restarted = replica("proxied", AWS_ENDPOINT_URL=settings_of(app).storage.s3_endpoint)  # same cache, nothing loaded
    answer = predict(restarted.test_client(), "1")

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["predictions"] == [pytest.approx(6.0)]


def test_a_missing_or_damaged_object_is_named_and_counted(replica, raw, ci):
    app = replica()
    client = app.test_client()
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    shas = {v["version"]: v["sha256"] for v in client.get("/models/m/versions").get_json()["items"]}
    obstore.delete(raw, key_for(shas[1]))
    obstore.put(raw, key_for(shas[2]), b"bit rot")

    def errors(kind):
        return REGISTRY.get_sample_value("registry_artifact_store_errors_total", {"kind": kind}) or 0.0

    before = errors("missing"), errors("damaged")
    assert_problem(predict(client, "1"), 500, shas[1], "is missing")
    assert_problem(predict(client, "2"), 500, shas[2], "no longer matches its sha256")
    assert (errors("missing"), errors("damaged")) == (before[0] + 1, before[1] + 1)


def test_the_scrub_finds_a_damaged_object_behind_an_alias_and_the_node_cache_keeps_its_copy(replica, raw, ci):
    app = replica()
    client, runner = app.test_client(), app.test_cli_runner()
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert predict(client, "production").status_code == 200  # in the node cache now
    sha = client.get("/models/m/versions/1").get_json()["sha256"]
    obstore.put(raw, key_for(sha), b"bit rot")
    assert client.get("/readyz").get_json()["warnings"] == []  # the cache alone is looked at while serving

    scrubbed = runner.invoke(args=["artifacts", "scrub"])

    assert scrubbed.exit_code == 1 and f"damaged {sha}: m v1" in scrubbed.output
    assert any(sha in warning for warning in client.get("/readyz").get_json()["warnings"])
    upload_ok(client, ci, "m", scaled_sum(2))
    assert client.post("/models/m/versions/2/promote", json={}, headers=ci).status_code == 200
    cache = app.extensions["model_registry"].store.cache
    cache.budget_bytes = 0
    cache.evict()
    assert cache.path_for(sha).is_file()  # the last good copy, kept while the store's is damaged
    app.extensions["model_registry"].store.put(artifact_bytes(scaled_sum(1)))  # the original bytes: repaired
    assert runner.invoke(args=["artifacts", "scrub"]).exit_code == 0
    cache.evict()
    assert not cache.path_for(sha).exists()


@pytest.fixture
def damaging(s3_server, replica):
    """An app whose S3 endpoint goes through a proxy that damages the body of every PUT."""
    proxy = DamagingProxy(("127.0.0.1", s3_server.ports["s3"]))
    with proxy:
        yield replica("damaged", AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}"), proxy


@pytest.mark.parametrize("size", ["one request", "multipart"])
def test_bytes_damaged_on_the_way_to_the_store_are_refused_by_it_and_nothing_is_registered(damaging, raw, ci, size,
                                                                                           monkeypatch):
    app, proxy = damaging
    if size == "multipart":
        monkeypatch.setattr(s3_store, "PART_BYTES", 5 * 1024 * 1024)  # S3's smallest part
    model = scaled_sum(2) if size == "one request" else forest(12)
    client = app.test_client()

    refused = upload(client, ci, "m", model)

    assert_problem(refused, 503, "did not match their sha256", "kept nothing")
    assert client.get("/models/m").status_code == 404
    assert list(obstore.list(raw).collect()) == []
    proxy.damaging = False
    requests_before = len(proxy.requests)
    stored = upload(client, ci, "m", model)
    assert stored.status_code == 201, stored.get_json()
    sha = stored.get_json()["sha256"]
    assert sha256_of(bytes(obstore.get(raw, key_for(sha)).bytes())) == sha
    sent = proxy.requests[requests_before:]
    assert not [path for method, path in sent if method == "GET" and sha in path]  # checked as written, not read back
