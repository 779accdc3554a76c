"""Errors as problem+json that leak nothing, and the operations routes: health, readiness, OpenAPI, docs."""
import io
import re
import shutil
from html.parser import HTMLParser
from itertools import chain

import pytest
from openapi_spec_validator import validate
from sklearn.linear_model import Ridge
from sqlalchemy.exc import ProgrammingError

from api.prediction_routes import url_map
from registry.catalog import models as catalog
from tests.helpers import assert_problem, regression_data, upload

# What must never reach a caller: tracebacks, SQL, file paths, connection strings.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|\bSELECT\b|\bINSERT INTO\b|\bWHERE\b|\bFROM [a-z_]+\b"
    r"|(?i:sqlalchemy|psycopg|sqlite3|postgresql|/tmp/|/work/|/home/|/var/)"
)


def ridge(alpha: float = 1.0) -> Ridge:
    return Ridge(alpha=alpha).fit(*regression_data())


# ---- HTTP errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/nope", "/models/housing/versions/1/nope", "/model", "/docs/assets/nope.js"])
def test_an_unknown_route_is_a_404_problem(client, path):
    assert_problem(client.get(path), 404, "/docs")


def test_the_root_leads_to_the_dashboard(client):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/ui/"


@pytest.mark.parametrize("method, path, allowed", [
    ("put", "/models", {"GET"}),
    ("delete", "/models/housing", {"GET", "PATCH"}),
    ("patch", "/models/housing/versions", {"GET", "POST"}),
    ("put", "/models/housing/versions/1", {"GET", "DELETE"}),
    ("get", "/models/housing/versions/1/promote", {"POST"}),
    ("get", "/models/housing/rollback", {"POST"}),
    ("post", "/healthz", {"GET"}),
    ("post", "/openapi.json", {"GET"}),
    ("patch", "/tokens", {"GET", "POST"}),
])
def test_a_wrong_method_is_a_405_problem_with_an_allow_header(client, method, path, allowed):
    response = getattr(client, method)(path)

    assert_problem(response, 405, "not allowed")
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert method.upper() not in response.headers["Allow"]


def _error_responses(client, admin, ci):
    """A sample of every kind of refusal the registry gives."""
    upload(client, admin, "housing", ridge())
    return [
        client.get("/models/nope"),
        client.get("/models/housing/versions/9"),
        client.get("/models/housing/versions/staging"),
        client.get("/models?per_page=9999"),
        client.get("/models/housing/versions?sort=bogus"),
        client.patch("/models/housing", json={"description": "x"}),
        client.patch("/models/housing", json={"description": "x"}, headers=ci),
        client.patch("/models/housing", json={"nope": 1}, headers=admin),
        client.patch("/models/housing", data="{bad", content_type="application/json", headers=admin),
        client.post("/models/housing/versions", json={}, headers=admin),
        client.post("/models/x%00/versions", data={"artifact": (io.BytesIO(b"junk"), "m")}, headers=admin),
        client.post("/models/housing/versions", data={"artifact": (io.BytesIO(b"junk"), "m")}, headers=admin),
        client.post("/tokens", json={"name": "admin", "role": "ci"}, headers=admin),
        client.delete("/tokens/nope", headers=admin),
        client.get("/models/housing/versions/1/artifact"),
        client.put("/models"),
        client.get("/nope"),
    ]


def test_every_error_is_problem_json_without_stack_trace_sql_or_path(client, admin, ci):
    responses = _error_responses(client, admin, ci)

    statuses = sorted({r.status_code for r in responses})
    assert statuses == [400, 401, 403, 404, 405, 409, 415, 422]
    for response in responses:
        assert_problem(response, response.status_code)


def test_an_unexpected_error_is_a_generic_500_that_leaks_nothing(client, monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError('SELECT * FROM models -- File "/work/main/registry/catalog.py", line 1')

    monkeypatch.setattr(catalog, "list_models", broken)

    body = assert_problem(client.get("/models"), 500)

    assert body["detail"] == "an unexpected error occurred; it has been logged"
    assert "SELECT * FROM models" in caplog.text  # the operator still gets the whole story


def test_a_database_error_is_a_500_that_shows_no_sql(client, monkeypatch):
    def broken(*_args, **_kwargs):
        raise ProgrammingError("SELECT secret FROM models WHERE name = %(name)s", {"name": "x"}, Exception("boom"))

    monkeypatch.setattr(catalog, "list_models", broken)

    assert_problem(client.get("/models"), 500)


# ---- health and readiness -------------------------------------------------------------------

def test_healthz_is_200(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_200_when_database_and_artifact_store_answer(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": True, "artifact_store": True},
        "problems": {},
        "unservable": [],
        "warnings": [],
    }


def test_readyz_is_degraded_not_unready_when_the_artifact_root_cannot_be_written(build_app, tmp_path):
    regular_file = tmp_path / "not-a-directory"
    regular_file.write_text("x")
    client = build_app(artifact_root=regular_file / "artifacts").test_client()

    response = client.get("/readyz")

    assert response.status_code == 200  # loaded models still answer: a load balancer keeps it
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"] == {"database": True, "artifact_store": False}
    assert body["problems"] == {"artifact_store": "the artifact store cannot be written"}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'registry_dependency_up{dependency="artifact_store"} 0.0' in metrics
    assert 'registry_dependency_up{dependency="database"} 1.0' in metrics


def _sqlite_in_a_removed_directory(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'gone' / 'registry.db'}"


def _postgres_on_a_closed_port(_tmp_path) -> str:
    return "postgresql+psycopg://postgres@127.0.0.1:1/registry?connect_timeout=2"


@pytest.mark.parametrize("database", [_sqlite_in_a_removed_directory, _postgres_on_a_closed_port],
                         ids=["sqlite-directory-gone", "postgres-closed-port"])
def test_readyz_is_503_when_the_database_is_unreachable(build_app, tmp_path, database):
    app = build_app(url=database(tmp_path))
    shutil.rmtree(tmp_path / "gone", ignore_errors=True)  # create_app made the SQLite directory
    client = app.test_client()

    ready = client.get("/readyz")
    models = client.get("/models")

    # Never read its aliases: this process cannot serve anything, so it is not ready.
    body = assert_problem(ready, 503, "database")
    assert body["errors"]["checks"] == {"database": False, "artifact_store": True}
    assert_problem(models, 503, "database is unavailable")
    assert models.headers["Retry-After"] == "5"  # says when to try again, as every 503 does
    assert client.get("/healthz").status_code == 200  # alive, just not ready


# ---- OpenAPI and docs -----------------------------------------------------------------------

def _documented_routes(app) -> dict[str, set[str]]:
    """Every API route of the app as an OpenAPI path with its methods (the dashboard's HTML pages are not API): Flask's,
    and the prediction routes its dispatcher answers (api/fast_predict.py)."""
    routes: dict[str, set[str]] = {}
    for rule in chain(app.url_map.iter_rules(), url_map(app.url_map.converters).iter_rules()):
        if rule.endpoint.startswith(("api-docs", "docs_assets", "static", "ui.")):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    return routes


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_openapi_json_is_openapi_3_1_and_lists_every_route(app, client):
    response = client.get("/openapi.json")

    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["title"] and spec["info"]["version"]
    documented = {path: {m for m in ops if m in {"get", "post", "put", "patch", "delete"}} for path, ops in spec["paths"].items()}
    assert documented == _documented_routes(app)
    for path, operations in spec["paths"].items():
        for method in documented[path]:
            assert operations[method]["responses"], (path, method)
            assert set(re.findall(r"{(\w+)}", path)) <= {p["name"] for p in operations.get("parameters", [])}
    for ref in _refs(spec):
        assert _resolve(spec, ref) is not None, ref


def test_openapi_json_passes_the_openapi_3_1_validator(client):
    validate(client.get("/openapi.json").get_json())  # raises on any violation of the specification


def _resolve(spec: dict, ref: str):
    """The node a local ``$ref`` (a JSON pointer) points at; None when it dangles."""
    assert ref.startswith("#/"), ref
    node = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_docs_load_only_local_assets_and_those_assets_are_served(client):
    response = client.get("/docs")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert not re.search(r"https?://|//cdn", html)
    parser = _Links()
    parser.feed(html)
    assert parser.urls, "the docs page should load its scripts and styles"
    for url in parser.urls:
        assert url.startswith("/docs/assets/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.mimetype in ("text/css", "text/javascript", "application/javascript"), (url, asset.mimetype)
    assert "/openapi.json" in html
