"""Bounded bodies: JSON nested however deep is a 400 on every JSON route, and metadata has its own limit."""
import gzip
import io
import json
import tracemalloc

import pytest
from flask_migrate import upgrade

from tests.databases import fresh_database
from tests.helpers import (
    ADMIN_TOKEN,
    MIGRATIONS,
    artifact_bytes,
    assert_problem,
    close_app,
    make_app,
    scaled_sum,
    upload_ok,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

DEPTHS = [65, 2_000, 100_000]


def nested_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


# Each shape is a whole body: the nesting at the top, or inside a field the route reads.
SHAPES = {
    "array": nested_array,
    "object": nested_object,
    "inside-a-field": lambda depth: '{"reason": %s}' % nested_array(depth),
}

# (method, path, who): every route that takes a JSON body.
JSON_ROUTES = [
    ("post", "/models/m/1/predict", None),
    ("post", "/models/m/predict", None),
    ("post", "/models/m/versions/1/promote", "admin"),
    ("post", "/models/m/rollback", "admin"),
    ("patch", "/models/m", "admin"),
    ("patch", "/models/m/versions/1", "admin"),
    ("post", "/models/m/versions/1/evaluations", "admin"),
    ("post", "/tokens", "admin"),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry holding model ``m`` version 1, served as ``production``; shared, since every
    request below is refused and changes nothing."""
    root = tmp_path_factory.mktemp("bounds")
    with fresh_database(root) as url:
        app = make_app(url, root / "artifacts")
        with app.app_context():
            upgrade(directory=MIGRATIONS)
        client = app.test_client()
        upload_ok(client, ADMIN, "m", scaled_sum(1.0))
        assert client.post("/models/m/versions/1/promote", json={}, headers=ADMIN).status_code == 200
        yield client
        close_app(app)


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method, path, who", JSON_ROUTES, ids=[f"{m} {p}" for m, p, _ in JSON_ROUTES])
def test_json_nested_however_deep_is_a_400_on_every_json_route(registry, method, path, who, shape, depth):
    body = SHAPES[shape](depth)

    response = getattr(registry, method)(
        path, data=body, content_type="application/json", headers=ADMIN if who else {}
    )

    assert_problem(response, 400, "deeper than 64 levels")


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", SHAPES)
def test_upload_metadata_nested_however_deep_is_a_400_and_nothing_is_stored(registry, shape, depth):
    form = {"artifact": (io.BytesIO(artifact_bytes(scaled_sum(2.0))), "m.joblib"), "metadata": SHAPES[shape](depth)}

    response = registry.post("/models/m/versions", data=form, headers=ADMIN, content_type="multipart/form-data")

    assert_problem(response, 400, "metadata nests", "deeper than 64 levels")
    assert registry.get("/models/m").get_json()["version_count"] == 1


def test_json_nested_up_to_the_limit_reaches_the_route(registry):
    params = json.loads(nested_array(63))

    response = registry.post("/models/m/versions/1/promote", json={"reason": params}, headers=ADMIN)

    assert_problem(response, 422, "reason")  # parsed, then refused by the schema, not by the depth check


def test_a_wide_but_shallow_batch_is_not_mistaken_for_deep_nesting(registry):
    response = registry.post("/models/m/1/predict", json={"instances": [[1.0, 1.0, 1.0]] * 500})

    assert response.status_code == 200
    assert response.get_json()["predictions"] == pytest.approx([3.0] * 500)


def test_metadata_of_600_kb_is_accepted_under_the_default_limit(client, admin):
    metadata = {"params": {"notes": "x" * 600_000}}

    version = upload_ok(client, admin, "m", scaled_sum(1.0), metadata)

    assert client.get(f"/models/m/versions/{version}").get_json()["params"]["notes"] == "x" * 600_000


def test_metadata_over_max_metadata_kb_is_413_naming_the_metadata_limit(build_app, admin):
    client = build_app(MAX_METADATA_KB=4).test_client()
    form = {"artifact": (io.BytesIO(artifact_bytes(scaled_sum(1.0))), "m.joblib"),
            "metadata": json.dumps({"params": {"notes": "x" * 5_000}})}

    response = client.post("/models/m/versions", data=form, headers=admin, content_type="multipart/form-data")

    assert_problem(response, 413, "metadata limit of 4 KB", "MAX_METADATA_KB")
    assert client.get("/models/m").status_code == 404


def _tiny_rows(count: int) -> bytes:
    return b'{"instances": [' + b",".join([b"[1]"] * count) + b"]}"


@pytest.mark.parametrize("path, encoding", [
    ("/models/m/predict", None), ("/v2/models/m/infer", None), ("/models/m/predict", "gzip"),
])
def test_millions_of_tiny_rows_are_413_before_they_are_parsed(registry, path, encoding):
    data = _tiny_rows(5_000_000)  # 20 MB that would be about a gigabyte of Python lists
    headers = {"Content-Type": "application/json"}
    if encoding:
        data, headers["Content-Encoding"] = gzip.compress(data, compresslevel=1), encoding
    tracemalloc.start()
    try:
        response = registry.post(path, data=data, headers=headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    body = response.get_json()
    assert "MAX_BATCH_ROWS" in (body.get("detail") or body.get("error"))
    assert peak < 5 * len(_tiny_rows(5_000_000))  # the body and a copy without strings, never the parsed rows


def test_brackets_inside_strings_are_not_counted(build_app):
    client = build_app(MAX_BATCH_ROWS=10).test_client()
    cell = "[" * 500 + "{" * 500
    response = client.post("/models/nope/predict", json={"dataframe_records": [{"city": cell}] * 3})
    assert_problem(response, 404, "does not exist")  # got past the count to the model lookup
