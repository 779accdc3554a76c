"""The OpenAPI document is built on first use, and is the one flask-smorest would build at start."""
import api
from api.lazy_spec import Api


class EagerApi(Api):
    """The Api with its document built at start, as flask-smorest's own builds it: each blueprint and each route
    the dispatcher answers documented as it is registered."""

    def _init_spec(self, **spec_args):
        super()._init_spec(**spec_args)
        assert self.spec is not None


def test_the_document_built_on_first_use_is_the_one_built_at_start(client, build_app, monkeypatch):
    lazily = client.get("/openapi.json")
    monkeypatch.setattr(api, "Api", EagerApi)
    eagerly = build_app().test_client().get("/openapi.json")

    assert lazily.status_code == eagerly.status_code == 200
    assert lazily.get_data() == eagerly.get_data()
    assert "/models/{name}/versions" in lazily.get_json()["paths"]


def test_an_app_that_never_serves_the_document_never_builds_it(app, client):
    client.get("/models")

    assert app.extensions["flask-smorest"]["apis"][""]["ext_obj"]._spec is None
    client.get("/openapi.json")
    assert app.extensions["flask-smorest"]["apis"][""]["ext_obj"]._spec is not None


def _texts(node, where=""):
    """Every summary and description in an OpenAPI document, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("summary", "description") and isinstance(value, str):
                yield f"{where}/{key}", value
            else:
                yield from _texts(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _texts(value, f"{where}/{i}")


def test_summaries_and_descriptions_are_plain_text_and_markdown_never_rest(client):
    document = client.get("/openapi.json").get_json()

    rest = {where: text for where, text in _texts(document) if "``" in text}
    assert rest == {}
    summaries = {where: text for where, text in _texts(document["paths"]) if where.endswith("/summary") and "`" in text}
    assert summaries == {}  # Swagger UI shows a summary as it is: no code marks at all


def test_the_api_docs_page_is_laid_out_for_the_devices_width(client):
    page = client.get("/docs").get_data(as_text=True)

    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert 'src="/docs/assets/swagger-ui-bundle.js"' in page and '"/openapi.json"' in page


def test_the_rollout_plan_is_described_field_by_field_not_as_an_opaque_object(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    plan = schemas["PlanRequest"]["properties"]
    step = schemas["PlanStep"]["properties"]
    assert plan["on_success"]["enum"] == ["promote", "halt"] and plan["steps"]["maxItems"] == 10
    assert step["percent"]["type"] == "number" and step["percent"]["exclusiveMaximum"] == 100
    assert step["min_requests"]["type"] == "integer" and schemas["PlanStep"]["required"] == ["percent"]
    assert set(schemas["PlanGates"]["properties"]) == {"error_rate", "latency", "agreement", "quality"}
    assert schemas["RolloutOut"]["properties"]["plan"]
    assert schemas["PlanOut"]["properties"]["steps"]["items"] == {"$ref": "#/components/schemas/PlanStepOut"}


def _security(document: dict) -> dict[str, list | None]:
    """Each operation's security requirement (None: none), by ``METHOD path``."""
    return {f"{method.upper()} {path}": operation.get("security")
            for path, methods in document["paths"].items() for method, operation in methods.items()
            if method != "parameters"}


TOKEN_ROUTES = ["POST /models/{name}/versions", "PATCH /models/{name}/versions/{ref}", "POST /tokens",
                "GET /models/{name}/predictions"]
OPEN_READS = ["GET /models", "GET /models/{name}/versions/{ref}", "POST /models/{name}/{ref}/predict",
              "POST /v2/models/{name}/infer"]


def test_open_routes_need_no_token_and_token_routes_need_the_bearer_token(client):
    """Swagger UI draws a padlock for any security requirement; ``[{}, bearer]`` made open reads look locked."""
    security = _security(client.get("/openapi.json").get_json())

    assert {route: security[route] for route in TOKEN_ROUTES} == {route: [{"bearerAuth": []}] for route in TOKEN_ROUTES}
    assert {route: security[route] for route in OPEN_READS} == {route: None for route in OPEN_READS}
    assert all(s is None or s == [{"bearerAuth": []}] for s in security.values())


def test_where_reads_need_a_token_the_document_says_so(build_app):
    document = build_app(REQUIRE_AUTH_FOR_READS=True).test_client().get("/openapi.json").get_json()
    security = _security(document)

    assert {route: security[route] for route in OPEN_READS} == {route: [{"bearerAuth": []}] for route in OPEN_READS}
    assert "403" in document["paths"]["/models"]["get"]["responses"]
    assert security["GET /healthz"] is None


def test_the_documents_version_is_the_packages(client):
    import tomllib

    from config import BASE_DIR

    package = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]["version"]
    assert client.get("/openapi.json").get_json()["info"]["version"] == package != "1.0"
    assert client.get("/v2").get_json()["version"] == package


# Routes that answer 410 for an archived version (each tested where its route is: test_predict_api.py,
# test_rollouts_api.py, test_batch_runs_api.py, …); a deep schemathesis run found the first four undocumented.
ARCHIVED_VERSION_ROUTES = [
    ("/models/{name}/{ref}/predict", "post"),
    ("/models/{name}/versions/{ref}/reference", "put"),
    ("/models/{name}/aliases/{alias}/rollout", "put"),
    ("/models/{name}/versions/{ref}/batch-runs", "post"),
    ("/models/{name}/versions/{number}/promote", "post"),
    ("/models/{name}/versions/{ref}/evaluations", "post"),
    ("/v2/models/{name}/versions/{version}/infer", "post"),
]


def test_every_route_an_archived_version_makes_410_says_so(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    documented = {f"{method.upper()} {route}": sorted(paths[route][method]["responses"])
                  for route, method in ARCHIVED_VERSION_ROUTES}
    assert {operation: "410" in statuses for operation, statuses in documented.items()} == dict.fromkeys(documented, True)
